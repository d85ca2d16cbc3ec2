package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is a process's CPU time and peak resident memory.
type procStat struct {
	CPU     time.Duration // user + system
	PeakRSS int64         // bytes (VmHWM)
	RSS     int64         // bytes (VmRSS)
}

// readProc reads the CPU time and memory of process pid from /proc.
func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("reading the process's CPU time: %w", err)
	}
	cpu, err := parseStatCPU(b)
	if err != nil {
		return st, err
	}
	st.CPU = cpu
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("reading the process's memory: %w", err)
	}
	defer f.Close()
	st.PeakRSS, st.RSS, err = parseStatusMem(f)
	return st, err
}

// cpuOfNamed sums the CPU time of the processes whose command name is one
// of names (those that end while it reads are left out).
func cpuOfNamed(names []string) time.Duration {
	if len(names) == 0 {
		return 0
	}
	dirs, _ := os.ReadDir("/proc")
	var sum time.Duration
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !slices.Contains(names, strings.TrimSpace(string(comm))) {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if cpu, err := parseStatCPU(b); err == nil {
				sum += cpu
			}
		}
	}
	return sum
}

// parseStatCPU returns utime+stime from the contents of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return time.Duration(ut+stt) * time.Second / clockTicks, nil
}

// parseStatusMem returns VmHWM and VmRSS in bytes from /proc/PID/status.
func parseStatusMem(r io.Reader) (hwm, rss int64, err error) {
	sc := bufio.NewScanner(r)
	found := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("malformed %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed %s line %q: %w", k, sc.Text(), err)
		}
		if k == "VmHWM" {
			hwm = n << 10
		} else {
			rss = n << 10
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, errors.New("no VmHWM/VmRSS in /proc status")
	}
	return hwm, rss, nil
}

// resetPeakRSS makes VmHWM start again from the current RSS, so each run
// gets its own peak (Linux ≥ 4.0, clear_refs value 5).
func resetPeakRSS(pid int) error {
	err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	if err != nil {
		return fmt.Errorf("resetting the peak RSS: %w", err)
	}
	return nil
}

// server is a `segsync serve` child process.
type server struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	log  *os.File
}

// buildSegsync builds ./cmd/segsync into dir and returns the binary's path.
func buildSegsync(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "segsync")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/segsync")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building segsync (run the benchmark from the module root or pass -segsync): %w", err)
	}
	return bin, nil
}

// runCLI runs a segsync command to completion and returns its stdout.
func runCLI(ctx context.Context, bin string, env []string, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("segsync %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServe starts `segsync serve` and waits until it is ready. Its log
// goes to logPath.
func startServe(ctx context.Context, bin string, env []string, logPath string, args ...string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", addr, "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting segsync serve: %w", err)
	}
	s := &server{cmd: cmd, url: "http://" + addr, done: make(chan error, 1), log: lf}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			lf.Close()
			return nil, fmt.Errorf("segsync serve exited before it was ready (%v); see %s", err, logPath)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("segsync serve not ready after 60 s; see %s", logPath)
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop ends the server with SIGTERM (SIGKILL after 30 s).
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.log.Close()
}
