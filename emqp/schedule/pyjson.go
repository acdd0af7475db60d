package schedule

import (
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// PyJSON appends v rendered as Python's json.dumps(v, sort_keys=True)
// does with its defaults: separators ", " and ": ", keys sorted, every
// non-ASCII character escaped (ensure_ascii), integers as written, floats
// as Python's repr. v is what encoding/json decodes with UseNumber:
// nil, bool, json.Number, string, []any, map[string]any.
func PyJSON(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if x {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case json.Number:
		return pyNumber(dst, string(x))
	case float64:
		return pyFloat(dst, x)
	case string:
		return pyString(dst, x)
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = PyJSON(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// Python sorts str keys by code point; UTF-8 byte order is the
		// same order.
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = pyString(dst, k)
			dst = append(dst, ": "...)
			dst = PyJSON(dst, x[k])
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}

// pyNumber renders a JSON number literal as Python re-renders it: an
// integer literal stays an int (arbitrary precision), anything with a
// fraction or exponent becomes a float.
func pyNumber(dst []byte, lit string) []byte {
	if !strings.ContainsAny(lit, ".eE") {
		var n big.Int
		if _, ok := n.SetString(lit, 10); ok {
			return n.Append(dst, 10)
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		// Out of range: Python's float('1e999') is inf, which json.dumps
		// writes as Infinity.
		if strings.HasPrefix(lit, "-") {
			return append(dst, "-Infinity"...)
		}
		return append(dst, "Infinity"...)
	}
	return pyFloat(dst, f)
}

// pyFloat renders f as Python's float repr: the shortest digits that
// round-trip, in fixed notation when the decimal exponent is from -4 to
// 15, else in exponent notation with at least two exponent digits.
func pyFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	}
	// Shortest round-trip digits and exponent from Go's 'e' format.
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	decpt := exp + 1 // Value is 0.digits × 10^decpt.
	if neg {
		dst = append(dst, '-')
	}
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			dst = append(dst, "0."...)
			dst = append(dst, strings.Repeat("0", -decpt)...)
			return append(dst, digits...)
		case decpt >= len(digits):
			dst = append(dst, digits...)
			dst = append(dst, strings.Repeat("0", decpt-len(digits))...)
			return append(dst, ".0"...)
		default:
			dst = append(dst, digits[:decpt]...)
			dst = append(dst, '.')
			return append(dst, digits[decpt:]...)
		}
	}
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	x := decpt - 1
	if x < 0 {
		dst = append(dst, '-')
		x = -x
	} else {
		dst = append(dst, '+')
	}
	if x < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(x), 10)
}

// pyString renders s as Python's json.dumps with ensure_ascii: \" \\ \n
// \r \t \b \f, other control characters and everything past ASCII as
// \uXXXX (surrogate pairs above the BMP).
func pyString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hex[r>>12&15], hex[r>>8&15], hex[r>>4&15], hex[r&15])
	}
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"':
			dst = append(dst, '\\', '"')
		case r == '\\':
			dst = append(dst, '\\', '\\')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r < 0x20 || r == 0x7f: // Python escapes all but space to tilde.
			dst = u(dst, r)
		case r < utf8.RuneSelf:
			dst = append(dst, byte(r))
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			dst = u(u(dst, r1), r2)
		default:
			dst = u(dst, r)
		}
	}
	return append(dst, '"')
}
