package segment

import (
	"strings"
	"time"

	"github.com/segsync/segsync/internal/profile/attrjson"
)

// dateParts is a date string taken apart by scanDate.
type dateParts struct {
	year, month, day     int
	hour, minute, second int
	offset               int // seconds east of UTC
	hasTime              bool
}

// scanDate reads YYYY-MM-DD[Thh:mm[:ss[.f+]][Z|±hh:mm]] without checking
// ranges; ok is false when s does not have that form.
func scanDate(s string) (p dateParts, ok bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	var good bool
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return p, false
	}
	if p.year, good = num(0, 4); !good {
		return p, false
	}
	if p.month, good = num(5, 2); !good {
		return p, false
	}
	if p.day, good = num(8, 2); !good {
		return p, false
	}
	if len(s) == 10 {
		return p, true
	}
	// Thh:mm
	if len(s) < 16 || s[10] != 'T' || s[13] != ':' {
		return p, false
	}
	p.hasTime = true
	if p.hour, good = num(11, 2); !good {
		return p, false
	}
	if p.minute, good = num(14, 2); !good {
		return p, false
	}
	i := 16
	if i < len(s) && s[i] == ':' {
		if p.second, good = num(i+1, 2); !good {
			return p, false
		}
		i += 3
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i+1 {
				return p, false
			}
			i = j
		}
	}
	switch {
	case i == len(s):
		return p, true
	case s[i] == 'Z' && i+1 == len(s):
		return p, true
	case (s[i] == '+' || s[i] == '-') && i+6 == len(s) && s[i+3] == ':':
		h, ok1 := num(i+1, 2)
		m, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || h > 15 || m > 59 {
			return p, false
		}
		p.offset = h*3600 + m*60
		if s[i] == '-' {
			p.offset = -p.offset
		}
		return p, true
	}
	return p, false
}

// IsDate reports whether s, as a rule value, compares as a date (see the
// package doc): one of the importer's date forms (attrjson.NormalizeDate)
// in the years 1000 to 9999.
func IsDate(s string) bool {
	norm, ok := attrjson.NormalizeDate(s)
	if !ok {
		return false
	}
	_, _, ok = DateKeys(norm)
	return ok
}

// looksLikeDate reports whether s is meant as a date, valid or not: it
// starts with YYYY-MM-DD and ends there or goes on with a time (T, t or a
// space, then a digit).
func looksLikeDate(s string) bool {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) == 10 || (len(s) > 11 && strings.ContainsRune("Tt ", rune(s[10])) && s[11] >= '0' && s[11] <= '9')
}

// DateKeys checks a date string and returns its two comparison keys: day,
// the calendar date as written (YYYY-MM-DD), and instant, the moment in UTC
// to the second (YYYY-MM-DDThh:mm:ss; midnight UTC for a date without time).
// ok is false when s is not a valid date of the form the package doc
// describes. The SQL functions segsync_date and segsync_instant return the
// same keys on both databases.
func DateKeys(s string) (day, instant string, ok bool) {
	t, ok := dateInstant(s)
	if !ok {
		return "", "", false
	}
	return s[:10], instantKey(t), true
}

// dateInstant checks a date string as DateKeys does and returns its
// instant; its day is then s[:10].
func dateInstant(s string) (time.Time, bool) {
	p, ok := scanDate(s)
	if !ok || p.year < 1000 || p.month < 1 || p.month > 12 || p.day < 1 ||
		p.hour > 23 || p.minute > 59 || p.second > 59 {
		return time.Time{}, false
	}
	t := time.Date(p.year, time.Month(p.month), p.day, p.hour, p.minute, p.second, 0, time.UTC)
	if t.Day() != p.day { // 2024-02-30 rolled over into March
		return time.Time{}, false
	}
	return t.Add(-time.Duration(p.offset) * time.Second), true
}

// instantKey is t formatted as 2006-01-02T15:04:05 (years 0–9999), without
// time.Format's layout parsing: rules evaluate it for every profile.
func instantKey(t time.Time) string {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	b := make([]byte, 19)
	put := func(at, v, digits int) {
		for i := at + digits - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	put(5, int(mo), 2)
	put(8, d, 2)
	put(11, h, 2)
	put(14, mi, 2)
	put(17, sec, 2)
	b[4], b[7], b[10], b[13], b[16] = '-', '-', 'T', ':', ':'
	return string(b)
}
