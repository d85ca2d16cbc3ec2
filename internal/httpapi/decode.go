package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/fielderr"
)

// maxJSONBody bounds JSON request bodies. Imports do not go through
// decodeJSON: they stream bodies of any size.
const maxJSONBody = 1 << 20

// decodeJSON reads one JSON value from the body into dst. It refuses a
// content type other than application/json (415), a body over maxJSONBody
// (413), unknown fields, values of the wrong type (naming the field) and
// anything after the value (400).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if err := requireContentType(r, "application/json"); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return problemf(http.StatusBadRequest, "the body must hold exactly one JSON value")
	}
	return nil
}

// requireContentType refuses a request whose media type is not one of want.
func requireContentType(r *http.Request, want ...string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		for _, w := range want {
			if mt == w {
				return nil
			}
		}
	}
	if ct == "" {
		ct = "none"
	}
	return problemf(http.StatusUnsupportedMediaType, "content type %s is not supported; send %s", ct, strings.Join(want, " or "))
}

// jsonProblem explains a decoding error in terms of the request.
func jsonProblem(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return problemf(http.StatusBadRequest, "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problemf(http.StatusBadRequest, "the body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return problemf(http.StatusBadRequest, "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return fielderr.New(field, "must be "+jsonTypeName(typ.Type.String())+", not "+typ.Value)
	}
	// encoding/json reports unknown fields only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		return fielderr.New(name, "unknown field")
	}
	return problemf(http.StatusBadRequest, "invalid JSON: %v", err)
}

// jsonTypeName names a Go type the way a JSON client thinks of it.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "an object"
	}
	return goType
}

// pageParams reads ?limit and ?cursor: limit defaults to def and may not
// exceed max.
func pageParams(r *http.Request, def, max int) (limit int, cursor string, err error) {
	q := r.URL.Query()
	limit = def
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return 0, "", fielderr.New("limit", "must be a whole number from 1 to "+strconv.Itoa(max))
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

// pathID reads the {id} of the path; an id that is not a positive number
// names no object, so it is a 404 naming what was looked for.
func pathID(r *http.Request, what string) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, problemf(http.StatusNotFound, "%s %q not found", what, v)
	}
	return id, nil
}
