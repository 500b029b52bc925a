package pyfmt

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// specRE parses Python's format mini-language:
// [[fill]align][sign][0][width][,][.precision][type].
var specRE = regexp.MustCompile(`^(?:(.)?([<>^=]))?([+\- ])?(0)?(\d+)?(,)?(?:\.(\d+))?([bcdeEfFgGnosxX%])?$`)

// Format implements the subset of Python's str.format the seed's alert
// messages use: "{name}" and "{name:spec}" with numeric and string
// specs, and "{{"/"}}" for literal braces. An unknown name or a bad spec
// is an error, as Python raises.
func Format(tmpl string, args map[string]any) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		switch {
		case c == '{' && i+1 < len(tmpl) && tmpl[i+1] == '{':
			b.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(tmpl) && tmpl[i+1] == '}':
			b.WriteByte('}')
			i += 2
		case c == '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("single '{' encountered in format string")
			}
			field := tmpl[i+1 : i+end]
			name, spec, _ := strings.Cut(field, ":")
			v, ok := args[name]
			if !ok {
				return "", fmt.Errorf("unknown placeholder {%s}", name)
			}
			s, err := formatValue(v, spec)
			if err != nil {
				return "", fmt.Errorf("placeholder {%s}: %w", field, err)
			}
			b.WriteString(s)
			i += end + 1
		case c == '}':
			return "", fmt.Errorf("single '}' encountered in format string")
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

func formatValue(v any, spec string) (string, error) {
	m := specRE.FindStringSubmatch(spec)
	if m == nil {
		return "", fmt.Errorf("invalid format spec %q", spec)
	}
	fill, align, sign, zero, width, comma, prec, typ := m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]
	var body string
	switch x := v.(type) {
	case string:
		if typ != "" && typ != "s" {
			return "", fmt.Errorf("unknown format code %q for a string", typ)
		}
		body = x
		if prec != "" {
			n, _ := strconv.Atoi(prec)
			if n < len(body) {
				body = body[:n]
			}
		}
		if align == "" {
			align = "<"
		}
	case float64:
		var err error
		if body, err = formatFloat(x, typ, prec, sign, comma != ""); err != nil {
			return "", err
		}
	case int:
		if typ == "" || typ == "d" {
			body = groupDigits(strconv.Itoa(x), comma != "")
			if sign == "+" && x >= 0 {
				body = "+" + body
			}
		} else {
			return formatValue(float64(x), spec)
		}
	default:
		body = fmt.Sprint(v)
	}
	w, _ := strconv.Atoi(width)
	if len([]rune(body)) >= w {
		return body, nil
	}
	if fill == "" {
		fill = " "
		if zero != "" && align == "" {
			fill, align = "0", "="
		}
	}
	if align == "" {
		align = ">"
	}
	pad := strings.Repeat(fill, w-len([]rune(body)))
	switch align {
	case "<":
		return body + pad, nil
	case "^":
		half := len(pad) / 2 / len(fill)
		return strings.Repeat(fill, half) + body + strings.Repeat(fill, w-len([]rune(body))-half), nil
	case "=":
		if strings.HasPrefix(body, "-") || strings.HasPrefix(body, "+") {
			return body[:1] + pad + body[1:], nil
		}
	}
	return pad + body, nil
}

func formatFloat(x float64, typ, prec, sign string, comma bool) (string, error) {
	p := 6
	if prec != "" {
		p, _ = strconv.Atoi(prec)
	}
	var s string
	switch typ {
	case "f", "F":
		s = strconv.FormatFloat(x, 'f', p, 64)
	case "e", "E":
		s = strconv.FormatFloat(x, 'e', p, 64) // Go and Python agree: "1.234568e+03"
		if typ == "E" {
			s = strings.ToUpper(s)
		}
	case "%":
		s = strconv.FormatFloat(x*100, 'f', p, 64) + "%"
	case "g", "G":
		if prec == "" {
			p = 6
		}
		s = strconv.FormatFloat(x, 'g', max(p, 1), 64)
	case "d":
		if x != math.Trunc(x) {
			return "", fmt.Errorf("unknown format code 'd' for a float")
		}
		s = strconv.FormatFloat(x, 'f', 0, 64)
	case "":
		if prec != "" {
			s = strconv.FormatFloat(x, 'g', max(p, 1), 64)
		} else {
			s = Float(x)
		}
	default:
		return "", fmt.Errorf("unknown format code %q for a float", typ)
	}
	if comma {
		intPart, rest, _ := strings.Cut(s, ".")
		if rest != "" {
			rest = "." + rest
		}
		s = groupDigits(intPart, true) + rest
	}
	if sign == "+" && x >= 0 {
		s = "+" + s
	} else if sign == " " && x >= 0 {
		s = " " + s
	}
	return s, nil
}

func groupDigits(s string, on bool) string {
	if !on {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
