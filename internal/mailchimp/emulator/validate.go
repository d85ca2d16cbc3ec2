package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fakeDomains and fakeLocals are addresses Mailchimp's validation calls
// "fake or invalid". The real list is secret; these are the well-known ones.
var (
	fakeDomains = []string{"example.com", "example.net", "example.org", "test.com", "mailinator.com"}
	fakeTLDs    = []string{"example", "test", "invalid", "localhost", "local"}
	fakeLocals  = []string{"test", "fake", "asdf", "example", "invalid", "noemail", "none", "null"}
)

// checkEmail returns an error when Mailchimp would refuse the address as
// fake or invalid.
func checkEmail(email string) *apiError {
	if !validEmail(email) || looksFake(email) {
		return errFakeEmail(email)
	}
	return nil
}

func validEmail(s string) bool {
	if len(s) > 254 || len(s) < 6 {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if isAlnum(c) || strings.IndexByte("!#$%&'*+/=?^_`{|}~.-", c) >= 0 {
			continue
		}
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, lb := range labels {
		if lb == "" || len(lb) > 63 || lb[0] == '-' || lb[len(lb)-1] == '-' {
			return false
		}
		for i := 0; i < len(lb); i++ {
			if !isAlnum(lb[i]) && lb[i] != '-' {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if tld[i] >= '0' && tld[i] <= '9' {
			return false
		}
	}
	return true
}

func looksFake(s string) bool {
	s = strings.ToLower(s)
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if slices.Contains(fakeLocals, local) {
		return true
	}
	for _, d := range fakeDomains {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	tld := domain[strings.LastIndexByte(domain, '.')+1:]
	return slices.Contains(fakeTLDs, tld)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

var (
	tagPattern   = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,9}$`)
	usZip        = regexp.MustCompile(`^\d{5}(-\d{4})?$`)
	mergeTypes   = []string{"text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip"}
	nonDigitsRun = regexp.MustCompile(`\D`)
)

// normalizeMerge validates one merge value for field f and returns its stored
// form. The message of a refusal is the one Mailchimp shows for the field.
func normalizeMerge(f *mergeField, raw json.RawMessage) (string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", "This value should be of type string."
	}
	if f.typ == "address" {
		if raw[0] == '"' {
			var s string
			if json.Unmarshal(raw, &s) != nil || s != "" {
				return "", "Please enter a complete address"
			}
			return "", ""
		}
		var a struct {
			Addr1   *string `json:"addr1"`
			Addr2   string  `json:"addr2"`
			City    *string `json:"city"`
			State   *string `json:"state"`
			Zip     *string `json:"zip"`
			Country string  `json:"country"`
		}
		if raw[0] != '{' || json.Unmarshal(raw, &a) != nil {
			return "", "Please enter a complete address"
		}
		if a.Addr1 == nil || *a.Addr1 == "" || a.City == nil || *a.City == "" || a.State == nil || *a.State == "" || a.Zip == nil || *a.Zip == "" {
			return "", "Please enter a complete address"
		}
		if a.Country == "" {
			a.Country = "US"
		}
		b, _ := json.Marshal(map[string]string{"addr1": *a.Addr1, "addr2": a.Addr2, "city": *a.City, "state": *a.State, "zip": *a.Zip, "country": a.Country})
		return string(b), ""
	}
	if f.typ == "number" {
		if raw[0] != '"' {
			v, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				return "", "Please enter a number"
			}
			return strconv.FormatFloat(v, 'f', -1, 64), ""
		}
	}
	if raw[0] != '"' {
		return "", "This value should be of type string."
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "This value should be of type string."
	}
	if s == "" {
		return "", ""
	}
	switch f.typ {
	case "text":
		if len([]rune(s)) > 255 {
			return "", "Please enter a value no longer than 255 characters"
		}
		return s, ""
	case "number":
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return "", "Please enter a number"
		}
		return strconv.FormatFloat(v, 'f', -1, 64), ""
	case "date":
		if t, ok := parseMergeDate(s, f.options.DateFormat); ok {
			return t.Format("2006-01-02"), ""
		}
		return "", "Please enter a valid date"
	case "birthday":
		layout := "01/02"
		if strings.HasPrefix(strings.ToUpper(f.options.DateFormat), "DD") {
			layout = "02/01"
		}
		t, err := time.Parse(layout, s)
		if err != nil {
			return "", "Please enter a valid birthday"
		}
		return t.Format("01/02"), ""
	case "phone":
		if f.options.PhoneFormat == "US" {
			digits := nonDigitsRun.ReplaceAllString(s, "")
			if len(digits) != 10 {
				return "", "Please enter a valid US phone number (e.g. 555-555-5555)"
			}
			return digits[0:3] + "-" + digits[3:6] + "-" + digits[6:], ""
		}
		if len(s) > 50 {
			return "", "Please enter a valid phone number"
		}
		return s, ""
	case "url", "imageurl":
		u := s
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || !strings.Contains(p.Host, ".") {
			return "", "Please enter a valid URL"
		}
		return u, ""
	case "radio", "dropdown":
		if !slices.Contains(f.options.Choices, s) {
			return "", "Please choose one of the available options"
		}
		return s, ""
	case "zip":
		if !usZip.MatchString(s) {
			return "", "Please enter a valid zip code"
		}
		return s, ""
	}
	return s, ""
}

// parseMergeDate accepts YYYY-MM-DD and the field's own date format.
func parseMergeDate(s, format string) (time.Time, bool) {
	layouts := []string{"2006-01-02"}
	switch strings.ToUpper(format) {
	case "DD/MM/YYYY":
		layouts = append(layouts, "02/01/2006")
	default:
		layouts = append(layouts, "01/02/2006")
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// mergeInput is one member write's merge_fields, validated against the list.
type mergeInput struct {
	slots  []int
	values []string
}

// parseMerge validates a merge_fields object against the list's fields.
// creating says whether the member is new (required fields must be present
// unless skip is set).
func (l *list) parseMerge(in map[string]json.RawMessage, creating, skip bool) (mergeInput, []fieldError) {
	var out mergeInput
	var errs []fieldError
	for k, raw := range in {
		slot, ok := l.fieldByTag(k)
		if !ok {
			errs = append(errs, fieldError{Field: k, Message: fmt.Sprintf("Merge field %q does not exist on this audience", k)})
			continue
		}
		v, msg := normalizeMerge(l.fields[slot], raw)
		if msg != "" {
			errs = append(errs, fieldError{Field: k, Message: msg})
			continue
		}
		if v == "" && l.fields[slot].required && !skip {
			errs = append(errs, fieldError{Field: k, Message: "Please enter a value"})
			continue
		}
		out.slots = append(out.slots, slot)
		out.values = append(out.values, v)
	}
	if creating && !skip {
		for i, f := range l.fields {
			if f.deleted || !f.required {
				continue
			}
			if _, given := in[f.tag]; !given && f.defaultValue == "" {
				errs = append(errs, fieldError{Field: f.tag, Message: "Please enter a value"})
			} else if !given {
				out.slots = append(out.slots, i)
				out.values = append(out.values, f.defaultValue)
			}
		}
	}
	slices.SortFunc(errs, func(a, b fieldError) int { return strings.Compare(a.Field, b.Field) })
	return out, errs
}

// apply writes the merge values into m; it reports whether anything changed.
func (in mergeInput) apply(m *member, nfields int) bool {
	changed := false
	for i, slot := range in.slots {
		v := in.values[i]
		if slot >= len(m.merge) {
			if v == "" {
				continue
			}
			grown := make([]string, nfields)
			copy(grown, m.merge)
			m.merge = grown
		}
		if m.merge[slot] != v {
			m.merge[slot] = v
			changed = true
		}
	}
	return changed
}
