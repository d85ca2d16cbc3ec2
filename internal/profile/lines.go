package profile

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// lineSource yields the physical lines of the input with their numbers. A
// caller that gives up on a multi-line record pushes its later lines back so
// they are parsed again; memory stays bounded by the record limits.
type lineSource struct {
	br      *bufio.Reader
	num     int64 // number of the last line read from br
	pending []numberedLine
	long    []byte // assembles lines longer than the reader's buffer
	maxLine int
	eof     bool
}

type numberedLine struct {
	num     int64
	text    []byte
	tooLong bool
}

func newLineSource(r io.Reader, maxLine int) *lineSource {
	return &lineSource{br: bufio.NewReaderSize(r, 256<<10), maxLine: maxLine}
}

// next returns the next line, including its line ending, and its number.
// The slice is valid until the next call. tooLong reports a line longer than
// maxLine, which is returned empty. At the end of the input err is io.EOF;
// any other error comes from the reader.
func (ls *lineSource) next() (text []byte, num int64, tooLong bool, err error) {
	if len(ls.pending) > 0 {
		l := ls.pending[0]
		ls.pending = ls.pending[1:]
		return l.text, l.num, l.tooLong, nil
	}
	if ls.eof {
		return nil, 0, false, io.EOF
	}
	line, err := ls.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		ls.long = append(ls.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = ls.br.ReadSlice('\n')
			if len(ls.long) <= ls.maxLine {
				ls.long = append(ls.long, line...)
			}
		}
		line = ls.long
	}
	if err == io.EOF {
		ls.eof = true
		if len(line) == 0 {
			return nil, 0, false, io.EOF
		}
		err = nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	ls.num++
	if len(line) > ls.maxLine {
		return nil, ls.num, true, nil
	}
	return line, ls.num, false, nil
}

// pushBack queues owned lines to be returned again, before the rest of the
// input.
func (ls *lineSource) pushBack(lines []numberedLine) {
	if len(lines) == 0 {
		return
	}
	ls.pending = append(append([]numberedLine(nil), lines...), ls.pending...)
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func isBlank(b []byte) bool {
	return len(bytes.TrimSpace(b)) == 0
}
