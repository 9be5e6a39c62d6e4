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
		if c := id[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return invalidID("alert id has characters other than A-Z a-z 0-9 _ -")
		}
	}
	return nil
}

func invalidID(msg string) error {
	return &Error{Kind: KindInvalidRequest, Message: msg}
}
