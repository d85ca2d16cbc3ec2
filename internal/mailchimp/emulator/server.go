package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is an emulator listening on a TCP address.
type Server struct {
	*Emulator
	// URL is the API base, "http://HOST:PORT/3.0".
	URL string
	// RootURL is "http://HOST:PORT", the base of the OAuth endpoints (the
	// "login URL").
	RootURL string

	srv  *http.Server
	done chan error
}

// Start serves a new emulator on 127.0.0.1 at a free port.
func Start(opts Options) (*Server, error) { return Listen("127.0.0.1:0", opts) }

// Listen serves a new emulator on addr (port 0 picks a free port).
func Listen(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listening on %s: %w", addr, err)
	}
	e := New(opts)
	s := &Server{
		Emulator: e,
		RootURL:  "http://" + ln.Addr().String(),
		srv:      &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second},
		done:     make(chan error, 1),
	}
	s.URL = s.RootURL + "/3.0"
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Close stops the server at once, dropping open connections, and stops
// webhook delivery.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	s.Emulator.Close()
	return err
}

// Shutdown stops the server gracefully.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err == nil {
		err = <-s.done
	}
	s.Emulator.Close()
	return err
}

// Key returns the first account's API key.
func (s *Server) Key() string { return s.Keys()[0] }
