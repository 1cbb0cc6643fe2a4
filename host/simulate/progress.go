package simulate

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a bar on a terminal (or when asked) while the policies
// replay; steps from all of them count towards one total.
type progress struct {
	w     io.Writer
	total int
	start time.Time

	mu    sync.Mutex
	n     int
	drawn time.Time
}

func newProgress(w io.Writer, force bool, total int) *progress {
	if !force && !isTerminal(w) {
		w = nil
	}
	return &progress{w: w, total: total, start: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// step counts one step of one policy; the bar is redrawn at most five times
// a second.
func (p *progress) step() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if now := time.Now(); now.Sub(p.drawn) >= 200*time.Millisecond || p.n == p.total {
		p.drawn = now
		p.draw()
	}
}

func (p *progress) draw() {
	const width = 40
	done := width * p.n / max(1, p.total)
	fmt.Fprintf(p.w, "\rsimulate [%s%s] %3d%% %s", strings.Repeat("#", done), strings.Repeat(".", width-done),
		100*p.n/max(1, p.total), time.Since(p.start).Round(time.Second))
}

// done ends the bar's line.
func (p *progress) done() {
	if p.w != nil {
		fmt.Fprintln(p.w)
	}
}
