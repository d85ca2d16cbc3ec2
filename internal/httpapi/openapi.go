package httpapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
)

// The API's OpenAPI document is kept in parts, one per area, so that each
// area describes its own paths: openapi/base.json holds the document's frame
// and shared components; every other openapi/*.json holds "paths" and, if it
// needs them, "components". They are merged once at start; a path or a
// component defined twice is an error.
//
//go:embed openapi/*.json
var openAPIParts embed.FS

// openAPIDocument merges the embedded parts into one JSON document.
func openAPIDocument() ([]byte, error) {
	names, err := fs.Glob(openAPIParts, "openapi/*.json")
	if err != nil {
		return nil, fmt.Errorf("listing OpenAPI parts: %w", err)
	}
	sort.Strings(names)
	var doc map[string]any
	if err := readPart("openapi/base.json", &doc); err != nil {
		return nil, err
	}
	for _, name := range names {
		if name == "openapi/base.json" {
			continue
		}
		var part map[string]any
		if err := readPart(name, &part); err != nil {
			return nil, err
		}
		for key, val := range part {
			switch key {
			case "paths":
				if err := mergeObject(doc, "paths", val, name); err != nil {
					return nil, err
				}
			case "components":
				comps, ok := val.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("OpenAPI part %s: components is not an object", name)
				}
				dst, _ := doc["components"].(map[string]any)
				if dst == nil {
					dst = map[string]any{}
					doc["components"] = dst
				}
				for kind, defs := range comps {
					if err := mergeObject(dst, kind, defs, name); err != nil {
						return nil, err
					}
				}
			case "tags":
				tags, _ := val.([]any)
				have, _ := doc["tags"].([]any)
				doc["tags"] = append(have, tags...)
			default:
				return nil, fmt.Errorf("OpenAPI part %s: only paths, components and tags may be given, not %q", name, key)
			}
		}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the OpenAPI document: %w", err)
	}
	return out, nil
}

func readPart(name string, v any) error {
	b, err := openAPIParts.ReadFile(name)
	if err != nil {
		return fmt.Errorf("reading OpenAPI part %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("OpenAPI part %s: %w", name, err)
	}
	return nil
}

// mergeObject adds the members of src to dst[key], refusing duplicates.
func mergeObject(dst map[string]any, key string, src any, part string) error {
	from, ok := src.(map[string]any)
	if !ok {
		return fmt.Errorf("OpenAPI part %s: %s is not an object", part, key)
	}
	to, _ := dst[key].(map[string]any)
	if to == nil {
		to = map[string]any{}
		dst[key] = to
	}
	for k, v := range from {
		if _, dup := to[k]; dup {
			return fmt.Errorf("OpenAPI part %s: %s %q is already defined in another part", part, key, k)
		}
		to[k] = v
	}
	return nil
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := w.Write(s.openapi)
	return err
}
