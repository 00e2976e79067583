package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress draws one line of progress on a terminal; elsewhere it stays silent.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	on   bool
	last time.Time
	drew bool
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, on: ok && isTerminal(f)}
}

func (p *progress) report(ev source.Progress) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && ev.Done != ev.Total {
		return
	}
	p.last = time.Now()
	item := ev.Item
	if len(item) > 19 {
		item = item[:19]
	}
	if ev.Total > 0 {
		const width = 30
		n := int(float64(width) * float64(ev.Done) / float64(ev.Total))
		n = min(max(n, 0), width)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < n {
				bar[i] = '='
			}
		}
		fmt.Fprintf(p.w, "\r%-6s %-19s [%s] %5.1f%% of %s ", ev.Stage, item, bar, 100*float64(ev.Done)/float64(ev.Total), human(ev.Total))
	} else {
		fmt.Fprintf(p.w, "\r%-6s %-19s %s ", ev.Stage, item, human(ev.Done))
	}
	p.drew = true
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drew {
		fmt.Fprint(p.w, "\r\033[K")
		p.drew = false
	}
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printSummary writes the package count per ecosystem and any extractor problems.
func printSummary(w io.Writer, invs []*model.Inventory) {
	for _, inv := range invs {
		counts := map[string]int{}
		for _, p := range inv.Packages {
			counts[p.Ecosystem]++
		}
		names := make([]string, 0, len(counts))
		for k := range counts {
			names = append(names, k)
		}
		sort.Strings(names)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		title := inv.Source.Kind + ":" + inv.Source.Name
		if inv.Source.Platform != "" {
			title += " (" + inv.Source.Platform + ")"
		}
		fmt.Fprintln(tw, title)
		if inv.OS != nil {
			fmt.Fprintf(tw, "  OS\t%s\n", firstNonEmpty(inv.OS.PrettyName, inv.OS.Family+" "+inv.OS.VersionID))
		}
		fmt.Fprintln(tw, "  ECOSYSTEM\tPACKAGES")
		for _, k := range names {
			fmt.Fprintf(tw, "  %s\t%d\n", k, counts[k])
		}
		fmt.Fprintf(tw, "  total\t%d\t(%.2fs)\n", len(inv.Packages), inv.Duration)
		tw.Flush()
		for _, st := range inv.Extractors {
			if st.Status != model.StatusOK {
				fmt.Fprintf(w, "  extractor %s: %s, %d file errors\n", st.Name, st.Status, len(st.Errors))
				for i, fe := range st.Errors {
					if i == 5 {
						fmt.Fprintf(w, "    … %d more\n", len(st.Errors)-5)
						break
					}
					fmt.Fprintf(w, "    %s: %s\n", fe.Path, fe.Error)
				}
			}
		}
		for _, wmsg := range inv.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", wmsg)
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
