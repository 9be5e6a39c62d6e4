package config

import (
	"io"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

const usageFormat = `{{range .}}  {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes the table of every environment variable with its default and
// meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if _, err := io.WriteString(tw, "  VARIABLE\tDEFAULT\tMEANING\n"); err != nil {
		return err
	}
	if err := envconfig.Usagef("", &Config{}, tw, usageFormat); err != nil {
		return err
	}
	return tw.Flush()
}
