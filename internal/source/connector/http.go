package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/segsync/segsync/internal/profile"
	"github.com/segsync/segsync/internal/profile/attrjson"
)

// httpReader streams a CSV or NDJSON file with the import's rules.
type httpReader struct {
	body   io.ReadCloser
	rows   *profile.RowReader
	key    string
	cols   []Column
	seen   map[string]int
	limit  int
	n      int64
	cursor string
	after  []byte // only rows whose cursor is past this value
	mark   []byte
	ctype  string
	row    Row
	mm     []attrjson.Member
}

// HTTPClient is the client http sources use; tests may replace it.
var HTTPClient = &http.Client{}

func openHTTP(ctx context.Context, cfg Config, opt Options) (Reader, error) {
	key := opt.Key
	if key == "" {
		key = profile.DefaultKey
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("the URL: %v", err)
	}
	for k, v := range cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "text/csv, application/x-ndjson;q=0.9, */*;q=0.1")
	where := safeURL(cfg.URL)
	resp, err := HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET %s: %v", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", where, resp.Status)
	}
	format := profile.Format(cfg.Format)
	if format == "" {
		if f, err := profile.FormatFromContentType(resp.Header.Get("Content-Type")); err == nil {
			format = f
		} else {
			switch strings.ToLower(path.Ext(req.URL.Path)) {
			case ".csv":
				format = profile.CSV
			case ".ndjson", ".jsonl":
				format = profile.NDJSON
			default:
				resp.Body.Close()
				return nil, fmt.Errorf("GET %s: the answer is %q, neither CSV nor NDJSON; set the source's format",
					where, resp.Header.Get("Content-Type"))
			}
		}
	}
	rows, err := profile.NewRowReader(resp.Body, format, key)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: not a %s file: %v", where, format, err)
	}
	r := &httpReader{body: resp.Body, rows: rows, key: key, seen: map[string]int{}, limit: opt.Limit, cursor: opt.Cursor}
	r.cols = append(r.cols, Column{Name: key, Type: TypeString})
	r.seen[key] = 0
	if m, ok := decodeMark(opt.After); ok {
		r.after = appendValue(nil, m.Type, []byte(m.Value))
		if m.Type == TypeString {
			r.after = attrjson.AppendString(nil, m.Value)
		}
	}
	return r, nil
}

// safeURL is the URL without its query (which may hold a token).
func safeURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the source URL"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

func (r *httpReader) Columns() []Column { return r.cols }

func (r *httpReader) Next(ctx context.Context) (Row, bool, error) {
	for {
		if r.limit > 0 && r.n >= int64(r.limit) {
			return Row{}, false, nil
		}
		if err := ctx.Err(); err != nil {
			return Row{}, false, err
		}
		rec, err := r.rows.Next()
		if err == io.EOF {
			return Row{}, false, nil
		}
		if err != nil {
			return Row{}, false, fmt.Errorf("reading the file: %v", err)
		}
		r.row = Row{Num: rec.Line, Fields: r.row.Fields[:0]}
		if rec.Reason != "" {
			r.n++
			r.row.Err = rec.Reason
			return r.row, true, nil
		}
		r.row.Fields = append(r.row.Fields, Field{Name: r.key, Value: attrjson.AppendString(nil, rec.Key)})
		if r.mm, err = attrjson.Split(r.mm[:0], rec.Attrs); err != nil {
			return Row{}, false, fmt.Errorf("reading the file: line %d: %v", rec.Line, err)
		}
		var cur []byte
		for _, m := range r.mm {
			name := string(m.Name)
			typ := attrjson.TypeOf(m.Value)
			if i, ok := r.seen[name]; !ok {
				r.seen[name] = len(r.cols)
				r.cols = append(r.cols, Column{Name: name, Type: typ})
			} else if r.cols[i].Type != typ {
				r.cols[i].Type = TypeString // mixed types in a file
			}
			r.row.Fields = append(r.row.Fields, Field{Name: name, Value: m.Value})
			if name == r.cursor {
				cur = m.Value
			}
		}
		if r.cursor != "" {
			if cur == nil {
				continue // no cursor value: not past the mark
			}
			typ := attrjson.TypeOf(cur)
			if r.after != nil && !greater(typ, cur, r.after) {
				continue
			}
			if r.mark == nil || greater(typ, cur, r.mark) {
				r.mark = append(r.mark[:0], cur...)
			}
		}
		r.n++
		return r.row, true, nil
	}
}

func (r *httpReader) Mark() string {
	if r.mark == nil {
		return ""
	}
	return encodeMark(attrjson.TypeOf(r.mark), r.mark)
}

func (r *httpReader) Close() error { return r.body.Close() }
