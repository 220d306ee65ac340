package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var implColor = map[string]color.RGBA{
	ours:    {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	anchor:  {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
	restart: {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}, // gray
}

var (
	upgradeColor = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	errorColor   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// savePNG draws a grid of plots (rows of columns) into one PNG.
func savePNG(path string, grid [][]*plot.Plot, w, h vg.Length) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(grid), Cols: len(grid[0]), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(grid, t, dc)
	for i := range grid {
		for j := range grid[i] {
			if grid[i][j] != nil {
				grid[i][j].Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// markUpgrades draws a dashed vertical line at each upgrade, from lo to hi.
func markUpgrades(p *plot.Plot, ups []upgradeRecord, lo, hi float64) {
	for i, u := range ups {
		x := u.at.Seconds()
		l, _ := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		l.Color = upgradeColor
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		if i == 0 {
			p.Legend.Add("upgrade (SIGHUP or SIGTERM)", l)
		}
		p.Add(l)
	}
}

// plotLoad is one PNG per load: a row per implementation, with the
// latency of the answered requests (p50 and p99 per 100 ms) on the left
// and the failed requests per 100 ms on the right, each upgrade marked.
func plotLoad(path string, rs []result) error {
	maxT, maxLat, maxErr := 0.0, 1.0, 1.0
	ss := make([]series, len(rs))
	for i, r := range rs {
		ss[i] = bucketize(r.samples, r.duration)
		maxT = math.Max(maxT, r.duration.Seconds())
		for j := range ss[i].t {
			maxLat = math.Max(maxLat, ss[i].p99[j])
			maxErr = math.Max(maxErr, ss[i].errs[j])
		}
	}
	var grid [][]*plot.Plot
	for i, r := range rs {
		s := ss[i]
		ok, failed := r.total()
		lat := plot.New()
		lat.Title.Text = fmt.Sprintf("%s: latency (%d answered)", r.impl, ok)
		lat.X.Label.Text = "seconds"
		lat.Y.Label.Text = "ms (log)"
		lat.Y.Scale = plot.LogScale{}
		lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		lat.Y.Min, lat.Y.Max = 0.05, maxLat*1.5
		lat.X.Min, lat.X.Max = 0, maxT
		var p50, p99 plotter.XYs
		for j := range s.t {
			if s.p99[j] > 0 {
				p50 = append(p50, plotter.XY{X: s.t[j], Y: math.Max(s.p50[j], 0.05)})
				p99 = append(p99, plotter.XY{X: s.t[j], Y: math.Max(s.p99[j], 0.05)})
			}
		}
		if len(p99) > 0 {
			l50, _ := plotter.NewLine(p50)
			l50.Color = color.RGBA{R: 0xaa, G: 0xaa, B: 0xaa, A: 0xff}
			l99, _ := plotter.NewLine(p99)
			l99.Color = implColor[r.impl]
			l99.Width = vg.Points(1.5)
			lat.Add(l50, l99)
			lat.Legend.Add("p50", l50)
			lat.Legend.Add("p99", l99)
		}
		markUpgrades(lat, r.upgrades, 0.05, maxLat*1.5)
		lat.Legend.Top = true

		errs := plot.New()
		errs.Title.Text = fmt.Sprintf("%s: failed requests (%d in all)", r.impl, failed)
		errs.X.Label.Text = "seconds"
		errs.Y.Label.Text = "per 100 ms"
		errs.X.Min, errs.X.Max = 0, maxT
		errs.Y.Min, errs.Y.Max = 0, maxErr*1.1
		var xy plotter.XYs
		for j := range s.t {
			xy = append(xy, plotter.XY{X: s.t[j], Y: s.errs[j]})
		}
		if len(xy) > 0 {
			l, _ := plotter.NewLine(xy)
			l.Color = errorColor
			l.Width = vg.Points(1.5)
			l.FillColor = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x60}
			errs.Add(l)
		}
		markUpgrades(errs, r.upgrades, 0, maxErr*1.1)
		errs.Legend.Top = true
		grid = append(grid, []*plot.Plot{lat, errs})
	}
	return savePNG(path, grid, 28*vg.Centimeter, vg.Length(len(rs))*7*vg.Centimeter)
}

// plotFailures is the picture at a glance: failed requests per 10,000,
// per load and implementation, on a log scale so that a handful shows next
// to thousands; a load with none is marked 0.
func plotFailures(path string, names []string, rates map[string][]float64) error {
	p := plot.New()
	p.Title.Text = "Failed requests per 10,000, over all upgrades of each load (log; 0 = none failed)"
	p.Y.Label.Text = "failed per 10,000 requests"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	const floor = 0.01
	p.Y.Min, p.Y.Max = floor, 10000
	var zeros plotter.XYLabels
	for i, impl := range impls {
		for j, pctFailed := range rates[impl] {
			x := float64(j) + float64(i-1)*0.27
			v := pctFailed * 100 // per 10,000
			if v <= 0 {
				zeros.XYs = append(zeros.XYs, plotter.XY{X: x, Y: floor * 1.3})
				zeros.Labels = append(zeros.Labels, "0")
				continue
			}
			bar, err := plotter.NewLine(plotter.XYs{{X: x, Y: floor}, {X: x, Y: math.Max(v, floor)}})
			if err != nil {
				return err
			}
			bar.Color = implColor[impl]
			bar.Width = vg.Points(13)
			p.Add(bar)
		}
		p.Legend.Add(impl, swatch{implColor[impl]})
	}
	if len(zeros.XYs) > 0 {
		l, err := plotter.NewLabels(zeros)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign = draw.XCenter
			l.TextStyle[i].Color = implColor[ours]
		}
		p.Add(l)
	}
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	return savePNG(path, [][]*plot.Plot{{p}}, 24*vg.Centimeter, 11*vg.Centimeter)
}

// plotUpgradeLatency is the distribution of upgrade latency: a box per
// load and implementation.
func plotUpgradeLatency(path string, names []string, lat map[string][][]time.Duration) error {
	p := plot.New()
	p.Title.Text = "Upgrade latency: SIGHUP (or SIGTERM) until the new generation is ready"
	p.Y.Label.Text = "ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	w := vg.Points(14)
	for i, impl := range impls {
		for j, ds := range lat[impl] {
			if len(ds) == 0 {
				continue
			}
			var v plotter.Values
			for _, d := range ds {
				v = append(v, math.Max(msf(d), 0.01))
			}
			b, err := plotter.NewBoxPlot(w, float64(j), v)
			if err != nil {
				return err
			}
			b.FillColor = implColor[impl]
			b.Offset = vg.Length(i-1) * (w + vg.Points(2))
			p.Add(b)
			if j == 0 {
				p.Legend.Add(impl, swatch{implColor[impl]})
			}
		}
	}
	p.Legend.Top = true
	p.NominalX(names...)
	return savePNG(path, [][]*plot.Plot{{p}}, 24*vg.Centimeter, 10*vg.Centimeter)
}

// plotFds is the upgrade latency by number of inherited listeners, and
// the cost per fd beyond the first.
func plotFds(path string, fds []fdResult) error {
	lat := plot.New()
	lat.Title.Text = "Upgrade latency by inherited listeners (median)"
	lat.X.Label.Text = "inherited listeners (log)"
	lat.Y.Label.Text = "ms (log)"
	lat.X.Scale, lat.Y.Scale = plot.LogScale{}, plot.LogScale{}
	lat.X.Tick.Marker, lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	per := plot.New()
	per.Title.Text = "Cost per inherited listener"
	per.X.Label.Text = "inherited listeners (log)"
	per.Y.Label.Text = "µs per fd beyond the first (from 1,000 fds)"
	per.X.Scale = plot.LogScale{}
	per.X.Tick.Marker = plot.LogTicks{Prec: -1}
	for _, impl := range []string{ours, anchor} {
		var xy, pf plotter.XYs
		base := median(fds[0].latencies[impl])
		for _, r := range fds {
			m := median(r.latencies[impl])
			xy = append(xy, plotter.XY{X: float64(r.n), Y: msf(m)})
			if r.n >= 1000 {
				pf = append(pf, plotter.XY{X: float64(r.n), Y: float64(m-base) / float64(r.n-fds[0].n) / 1e3})
			}
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color, s.Color = implColor[impl], implColor[impl]
		lat.Add(l, s)
		lat.Legend.Add(impl, l, s)
		if len(pf) > 0 {
			l2, s2, err := plotter.NewLinePoints(pf)
			if err != nil {
				return err
			}
			l2.Color, s2.Color = implColor[impl], implColor[impl]
			per.Add(l2, s2)
			per.Legend.Add(impl, l2, s2)
		}
	}
	lat.Legend.Top, lat.Legend.Left = true, true
	per.Legend.Top = true
	per.Y.Min = 0
	return savePNG(path, [][]*plot.Plot{{lat, per}}, 26*vg.Centimeter, 9*vg.Centimeter)
}

// swatch is a legend entry: a filled square of one color.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(s.c, c.ClipPolygonXY(pts))
}
