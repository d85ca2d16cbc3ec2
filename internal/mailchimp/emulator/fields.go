package emulator

import (
	"bytes"
	"encoding/json"
	"strings"
)

// filterFields applies Mailchimp's fields / exclude_fields query parameters
// (comma-separated, dot notation into nested objects and arrays) to body.
func filterFields(body []byte, fields, exclude string) ([]byte, *apiError) {
	// Numbers stay as written (json.Number): a float64 round trip would
	// fail on 1E1000 and round integers beyond 2^53.
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, &apiError{status: 500, title: "Internal Server Error", detail: err.Error()}
	}
	if fields != "" {
		doc = keepPaths(doc, splitPaths(fields))
	}
	if exclude != "" {
		for _, p := range splitPaths(exclude) {
			dropPath(doc, p)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, &apiError{status: 500, title: "Internal Server Error", detail: err.Error()}
	}
	return out, nil
}

func splitPaths(s string) [][]string {
	var out [][]string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.Split(p, "."))
		}
	}
	return out
}

// keepPaths returns v with only the given paths. Arrays are transparent:
// "members.email_address" keeps email_address of every member.
func keepPaths(v any, paths [][]string) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = keepPaths(el, paths)
		}
		return out
	case map[string]any:
		sub := map[string][][]string{}
		whole := map[string]bool{}
		for _, p := range paths {
			if len(p) == 1 {
				whole[p[0]] = true
			} else {
				sub[p[0]] = append(sub[p[0]], p[1:])
			}
		}
		out := map[string]any{}
		for k, val := range x {
			switch {
			case whole[k]:
				out[k] = val
			case sub[k] != nil:
				out[k] = keepPaths(val, sub[k])
			}
		}
		return out
	}
	return v
}

func dropPath(v any, p []string) {
	switch x := v.(type) {
	case []any:
		for _, el := range x {
			dropPath(el, p)
		}
	case map[string]any:
		if len(p) == 1 {
			delete(x, p[0])
			return
		}
		if next, ok := x[p[0]]; ok {
			dropPath(next, p[1:])
		}
	}
}
