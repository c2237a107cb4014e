package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// worker is a running worker process.
type worker struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan workerLine
	exit   chan error    // the process's exit, once
	exited chan struct{} // closed when the process has exited
	log    string

	mu     sync.Mutex
	result json.RawMessage

	// progress is the worker's last reported count (workerLine.Progress).
	progress atomic.Int64
}

// startWorker starts a worker process running spec, pinned to cpus when
// set, with its stderr in <OutDir>/logs/<name>.log.
func (b *run) startWorker(ctx context.Context, name, cpus string, spec workerSpec) (*worker, error) {
	if spec.Timeout == 0 {
		spec.Timeout = b.cfg.PhaseTimeout
	}
	argv := append([]string(nil), b.cfg.WorkerCommand...)
	if cpus != "" && cpus != "-" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	if b.cfg.Nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(b.cfg.Nice)}, argv...)
	}
	logPath := filepath.Join(b.cfg.OutDir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), b.cfg.WorkerEnv...)
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrWorker, name, err)
	}
	w := &worker{name: name, cmd: cmd, stdin: stdin, lines: make(chan workerLine, 16), exit: make(chan error, 1),
		exited: make(chan struct{}), log: logPath}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
		for sc.Scan() {
			var l workerLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			if l.Progress != nil {
				// Read by the progress display; the others wait
				// on lines.
				w.progress.Store(*l.Progress)
				continue
			}
			if l.Result != nil {
				w.mu.Lock()
				w.result = l.Result
				w.mu.Unlock()
			}
			w.lines <- l
		}
		close(w.lines)
		err := cmd.Wait()
		logf.Close()
		close(w.exited)
		w.exit <- err
	}()
	b.track(w)
	spec.LogLevel = "warn"
	line, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWorker, name, err)
	}
	return w, nil
}

// failed describes an exited worker, with the end of its log.
func (w *worker) failed(err error) error {
	b, _ := os.ReadFile(w.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%w: %s: %v; log %s ends:\n%s", ErrWorker, w.name, err, w.log, b)
}

// waitReady waits for the worker's ready line.
func (w *worker) waitReady(ctx context.Context) error {
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				return w.failed(errors.New("exited before it was ready"))
			}
			if l.Ready {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// send writes a command line.
func (w *worker) send(cmd string) error {
	_, err := io.WriteString(w.stdin, cmd+"\n")
	return err
}

// wait waits for the worker's result (decoded into v) and exit.
func (w *worker) wait(ctx context.Context, v any) error {
	for {
		select {
		case _, ok := <-w.lines:
			if ok {
				continue
			}
			var err error
			select {
			case err = <-w.exit:
			case <-ctx.Done():
				return ctx.Err()
			}
			w.mu.Lock()
			res := w.result
			w.mu.Unlock()
			if err != nil || res == nil {
				if err == nil {
					err = errors.New("exited without a result")
				}
				return w.failed(err)
			}
			return json.Unmarshal(res, v)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop asks the worker to report and exit, and waits for its result.
func (w *worker) stop(ctx context.Context, v any) error {
	_ = w.send(cmdStop)
	_ = w.stdin.Close()
	return w.wait(ctx, v)
}

// kill ends the worker if it still runs: end of input first (a worker
// stops at it), SIGKILL after 10s.
func (w *worker) kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.stdin.Close()
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		<-w.exited
	}
}
