package titanic

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Record formats. Every stored value starts with a format byte so that a
// later version can change the layout and still read old files.
//
//	request: 0x01, created (8 bytes, Unix ns, big endian), uvarint len, service, frames
//	reply:   0x01, received (8 bytes, Unix ns, big endian), frames
//	frames:  uvarint count, then per frame uvarint len, bytes
const recordV1 = 0x01

// maxRecordFrames bounds the frame count a decoder believes, so that a
// corrupted count cannot make it allocate without bound.
const maxRecordFrames = 1 << 20

func framesSize(frames [][]byte) int {
	n := binary.MaxVarintLen64
	for _, f := range frames {
		n += binary.MaxVarintLen64 + len(f)
	}
	return n
}

func appendFrames(dst []byte, frames [][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(frames)))
	for _, f := range frames {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

func encodeRequest(created time.Time, service string, body [][]byte) []byte {
	b := make([]byte, 0, 9+binary.MaxVarintLen64+len(service)+framesSize(body))
	b = append(b, recordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(created.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(service)))
	b = append(b, service...)
	return appendFrames(b, body)
}

func encodeReply(received time.Time, body [][]byte) []byte {
	b := make([]byte, 0, 9+framesSize(body))
	b = append(b, recordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(received.UnixNano()))
	return appendFrames(b, body)
}

// decoder reads a record, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad record: %s", ErrCorrupt, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) header() time.Time {
	if len(d.b) < 9 || d.b[0] != recordV1 {
		d.fail("header")
		return time.Time{}
	}
	t := time.Unix(0, int64(binary.BigEndian.Uint64(d.b[1:9])))
	d.b = d.b[9:]
	return t
}

// frames decodes a frame list. With copyOut the frames are copied into one
// new allocation (needed when the input is memory the engine owns, such as
// bbolt's read-only mmap, valid only inside its transaction).
func (d *decoder) frames(copyOut bool) [][]byte {
	n := d.uvarint("frame count")
	if d.err != nil {
		return nil
	}
	if n > maxRecordFrames || n > uint64(len(d.b)) {
		d.fail("frame count")
		return nil
	}
	src := d.b
	out := make([][]byte, n)
	for i := range out {
		out[i] = d.bytes(d.uvarint("frame length"), "frame")
	}
	if d.err != nil {
		return nil
	}
	if len(d.b) != 0 {
		d.fail("trailing bytes")
		return nil
	}
	if copyOut {
		buf := make([]byte, 0, len(src))
		for i, f := range out {
			start := len(buf)
			buf = append(buf, f...)
			out[i] = buf[start:len(buf):len(buf)]
		}
	}
	return out
}

// decodeRequest decodes a request record. Unless copyOut, the result
// aliases b.
func decodeRequest(b []byte, copyOut bool) (created time.Time, service string, body [][]byte, err error) {
	d := decoder{b: b}
	created = d.header()
	service = string(d.bytes(d.uvarint("service length"), "service"))
	body = d.frames(copyOut)
	return created, service, body, d.err
}

// decodeRequestService decodes only the service of a request record.
func decodeRequestService(b []byte) (string, error) {
	d := decoder{b: b}
	d.header()
	svc := string(d.bytes(d.uvarint("service length"), "service"))
	return svc, d.err
}

// decodeReply decodes a reply record.
func decodeReply(b []byte, copyOut bool) (received time.Time, body [][]byte, err error) {
	d := decoder{b: b}
	received = d.header()
	body = d.frames(copyOut)
	return received, body, d.err
}
