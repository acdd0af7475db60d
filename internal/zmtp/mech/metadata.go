package mech

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Property is one metadata property (23/ZMTP "Connection Metadata").
type Property struct {
	Name  string
	Value []byte
}

// Metadata is a list of properties in wire order.
type Metadata []Property

// maxValue is the largest value 23/ZMTP allows (2^31-1 octets).
const maxValue = 1<<31 - 1

// MetadataError reports where a metadata block is malformed. It wraps ErrMalformed.
type MetadataError struct {
	Offset int    // byte offset of the bad property in the block
	Reason string // what is wrong
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("mech: malformed metadata at offset %d: %s", e.Offset, e.Reason)
}

// Unwrap lets errors.Is(err, ErrMalformed) hold.
func (e *MetadataError) Unwrap() error { return ErrMalformed }

// Get returns the value of the first property whose name matches, ignoring
// case (23/ZMTP: "Metadata names SHALL be case-insensitive").
func (m Metadata) Get(name string) ([]byte, bool) {
	for _, p := range m {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return nil, false
}

// Validate reports a property that cannot be encoded: a name of 0 or more
// than 255 bytes, or a value of more than 2^31-1 bytes.
func (m Metadata) Validate() error {
	for i, p := range m {
		if len(p.Name) == 0 || len(p.Name) > 255 {
			return fmt.Errorf("property %d: name of %d bytes (1 to 255)", i, len(p.Name))
		}
		if len(p.Value) > maxValue {
			return fmt.Errorf("property %q: value of %d bytes (at most 2^31-1)", p.Name, len(p.Value))
		}
	}
	return nil
}

// Size returns the encoded length of m.
func (m Metadata) Size() int {
	n := 0
	for _, p := range m {
		n += 1 + len(p.Name) + 4 + len(p.Value)
	}
	return n
}

// Append encodes m after dst: for each property, name length (1 octet), name,
// value length (4 octets, network order), value. m must pass Validate
// (Handshake checks Config.Local); a longer name is cut to 255 bytes.
func (m Metadata) Append(dst []byte) []byte {
	for _, p := range m {
		name := p.Name
		if len(name) > 255 {
			name = name[:255]
		}
		dst = append(dst, byte(len(name)))
		dst = append(dst, name...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.Value)))
		dst = append(dst, p.Value...)
	}
	return dst
}

// ParseMetadata decodes a metadata block. Every length is checked against
// the bytes left before use; names must be 1 to 255 bytes and values at most
// 2^31-1 (23/ZMTP), and the block must end exactly after the last property.
// The result does not alias b (values share one copy of it). Errors are
// *MetadataError.
func ParseMetadata(b []byte) (Metadata, error) {
	if len(b) == 0 {
		return nil, nil
	}
	// Count first so that the result is allocated once and b's lengths are
	// all checked before anything is allocated for them.
	n := 0
	for off := 0; off < len(b); n++ {
		start := off
		nameLen := int(b[off])
		off++
		if nameLen == 0 {
			return nil, &MetadataError{Offset: start, Reason: "empty name"}
		}
		if nameLen > len(b)-off {
			return nil, &MetadataError{Offset: start, Reason: "name runs past the end"}
		}
		off += nameLen
		if len(b)-off < 4 {
			return nil, &MetadataError{Offset: start, Reason: "value size runs past the end"}
		}
		valueLen := binary.BigEndian.Uint32(b[off:])
		off += 4
		if valueLen > maxValue {
			return nil, &MetadataError{Offset: start, Reason: "value size above 2^31-1"}
		}
		if uint64(valueLen) > uint64(len(b)-off) {
			return nil, &MetadataError{Offset: start, Reason: "value runs past the end"}
		}
		off += int(valueLen)
	}
	own := make([]byte, len(b))
	copy(own, b)
	md := make(Metadata, 0, n)
	for off := 0; off < len(own); {
		nameLen := int(own[off])
		off++
		name := string(own[off : off+nameLen])
		off += nameLen
		valueLen := int(binary.BigEndian.Uint32(own[off:]))
		off += 4
		md = append(md, Property{Name: name, Value: own[off : off+valueLen : off+valueLen]})
		off += valueLen
	}
	return md, nil
}
