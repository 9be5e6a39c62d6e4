package config

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/alert-domains/alert-domains/internal/redact"
)

// Variable is one environment variable of the contract.
type Variable struct {
	Name        string
	Default     string // "" when none, or when it depends on others (the description says)
	Description string
	Group       string // the heading of its concern
}

// Variables lists every variable, group by group, from the tags of Config.
func Variables() []Variable {
	fields := variables(&Config{})
	vars := make([]Variable, len(fields))
	for i, f := range fields {
		vars[i] = f.Variable
	}
	return vars
}

const usageFormat = `{{range .}}    {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes the table of every variable with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	cv := reflect.ValueOf(&Config{}).Elem()
	for i := range cv.NumField() {
		group := cv.Type().Field(i).Tag.Get("group")
		if group == "" {
			continue
		}
		fmt.Fprintf(tw, "\n  %s\n", group)
		if err := envconfig.Usagef("", cv.Field(i).Addr().Interface(), tw, usageFormat); err != nil {
			return err
		}
	}
	return tw.Flush()
}

type field struct {
	Variable
	value      reflect.Value
	sensitive  bool
	credential bool // of the environment's app registration
	emptyOK    bool
}

func variables(c *Config) []field {
	var fields []field
	cv := reflect.ValueOf(c).Elem()
	for i := range cv.NumField() {
		group := cv.Type().Field(i).Tag.Get("group")
		if group == "" {
			continue
		}
		gv := cv.Field(i)
		for j := range gv.NumField() {
			f := gv.Type().Field(j)
			name := f.Tag.Get("envconfig")
			if name == "" {
				continue
			}
			fields = append(fields, field{
				Variable:   Variable{Name: name, Default: f.Tag.Get("default"), Description: f.Tag.Get("desc"), Group: group},
				value:      gv.Field(j),
				sensitive:  f.Tag.Get("sensitive") != "",
				credential: f.Tag.Get("sensitive") == "credential",
				emptyOK:    f.Tag.Get("emptyok") == "true",
			})
		}
	}
	return fields
}

// read sets the field from lookup, or its default when unset or empty.
func (f field) read(lookup Lookup) error {
	raw, set := lookup(f.Name)
	raw = strings.TrimSpace(raw)
	if !set || (raw == "" && !f.emptyOK) {
		raw, set = f.Default, false
	}
	switch err := setField(f.value, raw); {
	case err == nil:
		return nil
	case f.sensitive:
		return fmt.Errorf("%w: %s: %v (the value is not shown)", ErrInvalid, f.Name, err)
	case !set:
		return fmt.Errorf("%w: %s=%q (default): %v", ErrInvalid, f.Name, raw, err)
	default:
		return fmt.Errorf("%w: %s=%q: %v", ErrInvalid, f.Name, redact.URLs(raw), err)
	}
}

func setField(f reflect.Value, raw string) error {
	if raw == "" {
		return nil
	}
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("not a duration (use Go syntax such as 500ms, 30s, 5m)")
		}
		f.SetInt(int64(d))
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		f.SetBool(b)
	case int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("not an integer")
		}
		f.SetInt(int64(n))
	default: // string and Secret
		f.SetString(raw)
	}
	return nil
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}
