package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// A PDF is read in a process of its own: the binary (hermesd, or a test
// binary) started again with workerName as its argv[0]. The reader was not
// written for hostile input: a 200-byte file whose xref table claims two
// billion entries makes it allocate tens of gigabytes, which the Go
// runtime answers by aborting the whole process, not with a panic; a
// compression bomb or a ToUnicode map of millions of entries grows its
// memory without bound; a loop in an object graph spins. In a worker each
// of these costs the worker alone, cut off by a memory watchdog and a
// deadline, and the request gets a 400.
const workerName = "hermesd-pdf-worker"

// workerJobs bounds the PDF workers running at once: each is a process
// with its own memory budget.
var workerJobs = make(chan struct{}, 4)

func init() {
	if len(os.Args) > 0 && os.Args[0] == workerName {
		os.Exit(runWorker(os.Args[1:], os.Stdin, os.Stdout))
	}
}

// workerResult is what a worker writes back.
type workerResult struct {
	Pages, Read int
	Text        string
	Notes       []string
	// Err is why the file could not be read (a pdfError).
	Err string
}

// Exit codes a worker uses for the budgets it enforces on itself.
const (
	exitOverMemory = 3
	exitBadArgs    = 4
)

// runWorker reads one PDF from in and writes its workerResult to out. Its
// arguments are the limits, in order: pages, text bytes, content bytes,
// CMap bytes and memory bytes.
func runWorker(args []string, in io.Reader, out io.Writer) int {
	var n [5]int64
	if len(args) != len(n) {
		return exitBadArgs
	}
	for i, a := range args {
		v, err := strconv.ParseInt(a, 10, 64)
		if err != nil || v <= 0 {
			return exitBadArgs
		}
		n[i] = v
	}
	lim := Limits{MaxPages: int(n[0]), MaxTextBytes: int(n[1]), MaxContentBytes: n[2], MaxCMapBytes: n[3], MaxPDFMemory: n[4]}
	watchMemory(lim.MaxPDFMemory)
	data, err := io.ReadAll(in)
	if err != nil {
		return exitBadArgs
	}
	d := &Document{}
	var res workerResult
	if err := extractPDF(d, data, lim); err != nil {
		res.Err = err.Error()
	}
	res.Pages, res.Read, res.Text, res.Notes = d.Pages, d.Read, d.Text, d.Notes
	if json.NewEncoder(out).Encode(&res) != nil {
		return 1
	}
	return 0
}

// watchMemory makes the worker exit once its heap passes limit: the
// reader allocates on the file's say, and a worker that grows past its
// budget has met a hostile file. The collector is asked to work hard well
// before that.
func watchMemory(limit int64) {
	debug.SetMemoryLimit(limit / 2)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	go func() {
		for {
			metrics.Read(sample)
			if int64(sample[0].Value.Uint64()+sample[1].Value.Uint64()) > limit {
				os.Exit(exitOverMemory)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

// readPDF reads a PDF in a worker process (see workerName) within lim.
func readPDF(d *Document, data []byte, lim Limits) error {
	exe, err := os.Executable()
	if err != nil {
		return &hermes.Error{Code: hermes.EInternal, Message: "PDFs cannot be read here: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), lim.MaxPDFTime)
	defer cancel()
	select {
	case workerJobs <- struct{}{}:
		defer func() { <-workerJobs }()
	case <-ctx.Done():
		return badPDF(d.Name, fmt.Sprintf("reading it did not start within %s: too many PDFs are being read", lim.MaxPDFTime))
	}
	cmd := exec.CommandContext(ctx, exe, strconv.Itoa(lim.MaxPages), strconv.Itoa(lim.MaxTextBytes),
		strconv.FormatInt(lim.MaxContentBytes, 10), strconv.FormatInt(lim.MaxCMapBytes, 10), strconv.FormatInt(lim.MaxPDFMemory, 10))
	cmd.Args[0] = workerName
	cmd.Env = []string{} // it needs nothing of the server's environment
	cmd.Stdin = bytes.NewReader(data)
	var out limitedBuffer
	out.max = 6*lim.MaxTextBytes + 1<<20 // the text, JSON-escaped at worst, and the notes
	cmd.Stdout = &out
	runErr := cmd.Run()
	var res workerResult
	switch {
	case ctx.Err() != nil:
		return badPDF(d.Name, fmt.Sprintf("reading it took longer than %s", lim.MaxPDFTime))
	case exitCode(runErr) == exitOverMemory:
		return badPDF(d.Name, fmt.Sprintf("reading it needed more than %d MiB of memory (a hostile or broken file)", lim.MaxPDFMemory>>20))
	case runErr != nil:
		return badPDF(d.Name, "the reader crashed on it ("+runErr.Error()+"; a hostile or broken file)")
	case out.over:
		return badPDF(d.Name, "the reader produced more than its limit")
	case json.Unmarshal(out.Bytes(), &res) != nil:
		return badPDF(d.Name, "the reader's answer was unreadable")
	}
	if res.Err != "" {
		return badPDF(d.Name, res.Err)
	}
	d.Pages, d.Read, d.Text, d.Notes = res.Pages, res.Read, res.Text, res.Notes
	return nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// limitedBuffer keeps at most max bytes and notes when more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("worker output over its limit")
	}
	return b.Buffer.Write(p)
}
