package main

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// The picture of a run (-png): one more client, with a new connection per
// request, times every request; the PNG shows its latency over time, its
// failures, and each upgrade, from SIGHUP until the new generation was
// ready.

// sampler is the timing client.
type sampler struct {
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples []timedRequest
}

type timedRequest struct {
	at, lat time.Duration // since start
	pid     int           // 0: failed
}

// startPNG starts the timing client when -png asks for a picture.
func (d *demo) startPNG(url string) {
	if d.opts.png == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{start: time.Now(), cancel: cancel, done: make(chan struct{})}
	d.sampler = s
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			sent := time.Now()
			pid := 0
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if resp, err := client.Do(req); err == nil {
				body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if p, ok := loadtest.ParsePID(body); ok && err == nil && resp.StatusCode == http.StatusOK {
					pid = p
				}
			}
			if ctx.Err() != nil {
				return // interrupted by stopPNG: not counted
			}
			s.mu.Lock()
			s.samples = append(s.samples, timedRequest{at: sent.Sub(s.start), lat: time.Since(sent), pid: pid})
			s.mu.Unlock()
		}
	}()
}

// stopPNG stops the timing client, before the server stops.
func (d *demo) stopPNG() {
	if d.sampler != nil {
		d.sampler.cancel()
		<-d.sampler.done
	}
}

// writePNG writes the picture of the run to -png's path, and says so.
func (d *demo) writePNG() {
	if d.sampler == nil {
		return
	}
	d.stopPNG()
	if err := d.sampler.plot(d.opts.png, d.upgrades); err != nil {
		d.printf("PNG: %v\n", err)
		return
	}
	d.printf("Picture of the run: %s\n", d.opts.png)
}

func (s *sampler) plot(path string, ups []loadtest.Upgrade) error {
	s.mu.Lock()
	samples := slices.Clone(s.samples)
	s.mu.Unlock()
	if len(samples) == 0 {
		return fmt.Errorf("no request was timed")
	}
	var ok, failed plotter.XYs
	maxLat := 1.0
	for _, r := range samples {
		ms := math.Max(float64(r.lat)/float64(time.Millisecond), 0.05)
		if r.pid == 0 {
			failed = append(failed, plotter.XY{X: r.at.Seconds(), Y: ms})
			continue
		}
		ok = append(ok, plotter.XY{X: r.at.Seconds(), Y: ms})
		maxLat = math.Max(maxLat, ms)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("examples/http under load: %d upgrades, %d requests timed, %d failed", len(ups), len(samples), len(failed))
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "request latency, ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0.05, maxLat*2
	green := color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	// Each upgrade: from SIGHUP until the new generation was ready, which
	// ends when its first answer came (Latency before it).
	for i, u := range ups {
		j := slices.IndexFunc(samples, func(r timedRequest) bool { return r.pid == u.NewPID })
		if j < 0 {
			continue
		}
		ready := samples[j].at + samples[j].lat
		for k, x := range []float64{(ready - u.Latency).Seconds(), ready.Seconds()} {
			l, err := plotter.NewLine(plotter.XYs{{X: x, Y: p.Y.Min}, {X: x, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			l.Color = green
			if k == 0 {
				l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
			}
			p.Add(l)
			if i == 0 {
				p.Legend.Add([]string{"SIGHUP", "new generation ready"}[k], l)
			}
		}
	}
	sc, err := plotter.NewScatter(ok)
	if err != nil {
		return err
	}
	sc.GlyphStyle.Radius = vg.Points(1)
	sc.GlyphStyle.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	p.Add(sc)
	p.Legend.Add("answered", sc)
	if len(failed) > 0 {
		fs, err := plotter.NewScatter(failed)
		if err != nil {
			return err
		}
		fs.GlyphStyle.Radius = vg.Points(2.5)
		fs.GlyphStyle.Color = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
		p.Add(fs)
		p.Legend.Add("failed", fs)
	}
	p.Legend.Top = true
	if err := p.Save(24*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return err
	}
	_, err = os.Stat(path)
	return err
}
