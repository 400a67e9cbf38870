package nbns

import (
	"errors"
	"fmt"
)

// Conditions a decoder or encoder reports; ParseError and the encoder's errors wrap
// them, so callers branch with errors.Is.
var (
	ErrTruncated  = errors.New("message truncated")
	ErrPointer    = errors.New("bad compression pointer")
	ErrLabel      = errors.New("bad label")
	ErrNameLength = errors.New("name too long")
	ErrCount      = errors.New("count exceeds message size")
	ErrRData      = errors.New("bad record data")
)

// ParseError says which field of a message could not be decoded and where.
type ParseError struct {
	Field  string // e.g. "answer 1 name", "header"
	Offset int    // byte offset into the message where the field starts or breaks
	Err    error  // one of the Err* conditions, possibly wrapped with detail
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("nbns: %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(field string, off int, err error) error {
	return &ParseError{Field: field, Offset: off, Err: err}
}

// within prefixes a nested field name ("answer 1" + "name" → "answer 1 name") while
// keeping the innermost offset.
func within(prefix string, err error) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		return &ParseError{Field: prefix + " " + pe.Field, Offset: pe.Offset, Err: pe.Err}
	}
	return err
}
