package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

var funcs = template.FuncMap{
	"num":     formatNum,
	"when":    formatTime,
	"ago":     formatAgo,
	"pct":     percent,
	"label":   label,
	"has":     func(list []int64, id int64) bool { return containsID(list, id) },
	"add":     func(a, b int) int { return a + b },
	"deref":   deref,
	"list":    func(s ...string) []string { return s },
	"trigger": triggerText,
	"action":  actionText,
	"detail":  detailText,
	"initial": func(s string) string {
		for _, r := range s {
			return string(unicode.ToUpper(r))
		}
		return "?"
	},
}

// formatNum writes a count with thousands separators: 1,234,567.
func formatNum(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return x.String()
		}
		n = i
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func timeOf(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, !x.IsZero()
	case *time.Time:
		if x == nil {
			return time.Time{}, false
		}
		return *x, !x.IsZero()
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	}
	return time.Time{}, false
}

// formatTime writes a time in UTC the way people read it.
func formatTime(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// formatAgo writes how long ago (or from now) a time is.
// formatMS writes a duration given in milliseconds for people: 850 ms,
// 4.2 s, 3 min 5 s, 2 h 10 min.
func formatMS(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return strconv.FormatInt(ms, 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%d h %d min", d/time.Hour, d%time.Hour/time.Minute)
}

func formatAgo(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return "never"
	}
	d := time.Since(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return map[bool]string{false: "just now", true: "in a moment"}[future]
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// percent is done of total as a whole percentage (0 when total is 0).
func percent(done, total int64) int64 {
	if total <= 0 {
		return 0
	}
	p := done * 100 / total
	return min(max(p, 0), 100)
}

// label turns an API word (partially_succeeded, status_if_new) into words.
func label(s string) string {
	s = strings.ReplaceAll(s, "_", " ")
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func containsID(list []int64, id int64) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// friendly turns an API message into a sentence a marketer reads easily:
// capitalised, ending with a full stop, without the jargon of "required".
func friendly(msg string) string {
	msg = strings.TrimSpace(msg)
	switch msg {
	case "":
		return ""
	case "required", "is required":
		return "Please fill this in."
	}
	r := []rune(msg)
	r[0] = unicode.ToUpper(r[0])
	msg = string(r)
	if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, "?") && !strings.HasSuffix(msg, "!") {
		msg += "."
	}
	return msg
}

// deref reads a pointer the templates get from optional JSON fields.
func deref(v any) any {
	switch x := v.(type) {
	case *bool:
		return x != nil && *x
	case *int:
		if x == nil {
			return 0
		}
		return *x
	case *int64:
		if x == nil {
			return int64(0)
		}
		return *x
	case *string:
		if x == nil {
			return ""
		}
		return *x
	}
	return v
}

func sortStrings(s []string) { slices.Sort(s) }

// triggerText says how a run started.
func triggerText(t string) string {
	switch t {
	case "manual":
		return "Started by hand"
	case "schedule":
		return "On its schedule"
	case "refresh":
		return "System refresh"
	}
	return label(t)
}

// actionWords say what an audit action did.
var actionWords = map[string]string{
	"create": "created", "update": "changed", "delete": "deleted", "consent": "consent given",
	"start": "started", "cancel": "cancelled", "login": "signed in", "logout": "signed out",
	"revoke": "revoked", "test": "tested", "detach": "detached", "rotate": "key replaced",
	"import": "imported", "erase": "erasure requested", "erased": "erased",
}

// actionText turns an audit action (connection.create) into words
// (Connection created); unknown verbs stay as they are.
func actionText(a string) string {
	obj, verb, ok := strings.Cut(a, ".")
	if !ok {
		return label(a)
	}
	if obj == "session" {
		obj = "user"
	}
	if w, ok := actionWords[verb]; ok {
		verb = w
	}
	return label(obj + " " + strings.ReplaceAll(verb, "_", " "))
}

// detailText writes one value of an audit event's detail: rules in words
// (country is NL and age is at least 18), changes as old → new, other
// objects as compact JSON.
func detailText(key string, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if key == "rule" || key == "old_rule" {
			b, err := json.Marshal(x)
			if err == nil {
				return describeRule(b)
			}
		}
		if key == "changed" {
			parts := make([]string, 0, len(x))
			for _, k := range slices.Sorted(maps.Keys(x)) {
				c, _ := x[k].(map[string]any)
				parts = append(parts, label(k)+" "+detailText(k, c["old"])+" → "+detailText(k, c["new"]))
			}
			return strings.Join(parts, "; ")
		}
	case nil:
		return "none"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
