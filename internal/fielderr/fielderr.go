// Package fielderr carries validation faults that name the field they concern,
// so that every layer can report "rule.all[2].op: unknown operator" and the
// HTTP layer can turn the list into a 400 problem+json with an errors array.
package fielderr

import "strings"

// Error is one fault of one field. Field is a path such as "mapping.email"
// or "rule.all[2].value".
type Error struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e Error) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// List collects faults; its zero value is ready to use.
type List []Error

// Add records one fault.
func (l *List) Add(field, message string) { *l = append(*l, Error{Field: field, Message: message}) }

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l List) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// New returns an error with a single fault.
func New(field, message string) error { return List{{Field: field, Message: message}} }
