package message

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateAlertID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"da637472900382838869_1364969609", true},
		{"636688558380765161_2136280442", true},
		{"da637200417169017725_183736971", true},
		{"da637551227677560813_-961444813", true},
		{"a", true},
		{"A-Z_a-z_0-9", true},
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"da637472900382838869 1364969609", false},
		{" da637472900382838869_1364969609", false},
		{"../../admin", false},
		{"a/b", false},
		{"a%2Fb", false},
		{"a?b", false},
		{"a#b", false},
		{"a.b", false},
		{"ünïcode", false},
		{"a\x00b", false},
		{"a\nb", false},
	}
	for _, tt := range tests {
		err := ValidateAlertID(tt.id)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidateAlertID(%q) = %v, want nil", tt.id, err)
			}
			continue
		}
		if KindOf(err) != KindInvalidRequest {
			t.Errorf("ValidateAlertID(%q) = %v, want invalid_request", tt.id, err)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Message == "" || e.Err != nil {
			t.Errorf("ValidateAlertID(%q) = %#v, want an *Error with a message", tt.id, err)
		}
	}
}

func TestValidateAlertIDDoesNotAllocate(t *testing.T) {
	id := "da637551227677560813_-961444813"
	if n := testing.AllocsPerRun(100, func() { _ = ValidateAlertID(id) }); n != 0 {
		t.Errorf("ValidateAlertID allocates %v times per valid ID", n)
	}
}

func FuzzValidateAlertID(f *testing.F) {
	for _, s := range []string{"da637472900382838869_1364969609", "636688558380765161_2136280442",
		"da637551227677560813_-961444813", "", "a/b", "../x", strings.Repeat("a", 129), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateAlertID(id)
		want := len(id) >= 1 && len(id) <= 128
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				want = false
			}
		}
		if (err == nil) != want {
			t.Fatalf("ValidateAlertID(%q) = %v, want valid %v", id, err, want)
		}
		if err != nil && KindOf(err) != KindInvalidRequest {
			t.Fatalf("kind %s, want invalid_request", KindOf(err))
		}
	})
}
