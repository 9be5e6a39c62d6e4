package message

// MaxAlertIDLength is the longest alert ID the service accepts.
const MaxAlertIDLength = 128

// ValidateAlertID reports whether id is 1 to 128 of A-Z a-z 0-9 _ -.
func ValidateAlertID(id string) error {
	switch {
	case id == "":
		return invalidID("alert id is empty")
	case len(id) > MaxAlertIDLength:
		return invalidID("alert id is longer than 128 characters")
	}
	for i := 0; i < len(id); i++ {
		if !idChar[id[i]] {
			return invalidID("alert id has characters other than A-Z a-z 0-9 _ -")
		}
	}
	return nil
}

func invalidID(msg string) error {
	return &Error{Kind: KindInvalidRequest, Message: msg}
}

// idChar marks the bytes an alert ID may hold.
var idChar = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") {
		t[c] = true
	}
	return t
}()
