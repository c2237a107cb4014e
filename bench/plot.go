package bench

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot file names written by WritePlots.
const (
	PlotThroughput = "throughput.png"
	PlotLatency    = "latency.png"
	PlotScaling    = "scaling.png"
)

// WritePlots draws the result into dir: ingested against offered events/s
// (PlotThroughput), latency quantiles against offered events/s
// (PlotLatency), and throughput and memory against users (PlotScaling).
// Scales without measurements are left out.
func WritePlots(r *Result, dir string) error {
	if len(r.Scales) == 0 {
		return nil
	}
	for _, f := range []func(*Result, string) error{plotThroughput, plotLatency, plotScaling} {
		if err := f(r, dir); err != nil {
			return fmt.Errorf("bench: plot: %w", err)
		}
	}
	return nil
}

func scaleColor(i int) color.Color { return plotutil.Color(i) }

func plotThroughput(r *Result, dir string) error {
	p := plot.New()
	p.Title.Text = "Ingested vs offered load"
	p.X.Label.Text = "offered load (events/s; rightmost point: pre-loaded backlog)"
	p.Y.Label.Text = "durable in Redis (events/s)"
	p.Legend.Top, p.Legend.Left = false, false // bottom right: below the diagonal, right of the points
	var hi float64
	for i, s := range r.Scales {
		var pts plotter.XYs
		for _, l := range s.Loads {
			pts = append(pts, plotter.XY{X: l.OfferedPerSec, Y: l.IngestedPerSec})
		}
		if s.Max.EventsPerSec > 0 {
			pts = append(pts, plotter.XY{X: s.Max.EventsPerSec, Y: s.Max.EventsPerSec})
			hi = max(hi, s.Max.EventsPerSec, s.ConsumeFloor.EventsPerSec)
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, sc.Color = scaleColor(i), scaleColor(i)
		sc.Shape = draw.CircleGlyph{}
		p.Add(l, sc)
		p.Legend.Add(fmtUsers(s.Users)+" users", l, sc)
		if f := s.ConsumeFloor.EventsPerSec; f > 0 {
			fl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: f}, {X: f, Y: f}})
			if err != nil {
				return err
			}
			fl.Color, fl.Dashes = scaleColor(i), []vg.Length{vg.Points(2), vg.Points(3)}
			p.Add(fl)
			p.Legend.Add(fmtUsers(s.Users)+" consume+decode floor", fl)
		}
	}
	if hi > 0 {
		ideal, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: hi, Y: hi}})
		if err != nil {
			return err
		}
		ideal.Color, ideal.Dashes = color.Gray{Y: 160}, []vg.Length{vg.Points(1), vg.Points(2)}
		p.Add(ideal)
		p.Legend.Add("ingested = offered", ideal)
	}
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, PlotThroughput))
}

func plotLatency(r *Result, dir string) error {
	p := plot.New()
	p.Title.Text = "Latency vs offered load"
	p.X.Label.Text = "offered load (events/s)"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	series := []struct {
		name   string
		get    func(l LoadRun) float64
		dashes []vg.Length
		glyph  draw.GlyphDrawer
	}{
		{"durable p50", func(l LoadRun) float64 { return l.Durable.P50Ms }, []vg.Length{vg.Points(1), vg.Points(2)}, draw.CircleGlyph{}},
		{"durable p99", func(l LoadRun) float64 { return l.Durable.P99Ms }, nil, draw.CircleGlyph{}},
		{"durable p99.9", func(l LoadRun) float64 { return l.Durable.P999Ms }, []vg.Length{vg.Points(6), vg.Points(2)}, draw.CircleGlyph{}},
		{"snapshot emit p99", func(l LoadRun) float64 { return l.Emit.P99Ms }, []vg.Length{vg.Points(4), vg.Points(4)}, draw.TriangleGlyph{}},
		{"change or trigger p99", func(l LoadRun) float64 { return l.Output.P99Ms }, []vg.Length{vg.Points(8), vg.Points(3)}, draw.SquareGlyph{}},
	}
	drawn := false
	for i, s := range r.Scales {
		if len(s.Loads) == 0 {
			continue
		}
		for _, se := range series {
			var pts plotter.XYs
			for _, l := range s.Loads {
				if v := se.get(l); v > 0 {
					pts = append(pts, plotter.XY{X: l.OfferedPerSec, Y: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color, l.Dashes, sc.Color, sc.Shape = scaleColor(i), se.dashes, scaleColor(i), se.glyph
			p.Add(l, sc)
			p.Legend.Add(fmt.Sprintf("%s users %s", fmtUsers(s.Users), se.name), l, sc)
			drawn = true
		}
	}
	if !drawn {
		return nil
	}
	if ms := r.Setup.FlushIntervalMs; ms > 0 {
		fl := plotter.NewFunction(func(float64) float64 { return ms })
		fl.Color, fl.Dashes = color.Gray{Y: 140}, []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(fl)
		p.Legend.Add(fmt.Sprintf("flush interval (%.0f ms)", ms), fl)
	}
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 5*vg.Inch, filepath.Join(dir, PlotLatency))
}

func plotScaling(r *Result, dir string) error {
	rate := plot.New()
	rate.Title.Text = "Throughput vs distinct users"
	rate.X.Label.Text = "distinct users (log scale)"
	rate.Y.Label.Text = "events/s"
	rate.X.Scale = plot.LogScale{}
	rate.X.Tick.Marker = plot.LogTicks{Prec: -1}
	mem := plot.New()
	mem.Title.Text = "Memory vs distinct users"
	mem.X.Label.Text = "distinct users (log scale)"
	mem.Y.Label.Text = "MiB"
	mem.X.Scale = plot.LogScale{}
	mem.X.Tick.Marker = plot.LogTicks{Prec: -1}
	var pipe, floor, rss, redisMem plotter.XYs
	for _, s := range r.Scales {
		x := float64(s.Users)
		if s.Max.EventsPerSec > 0 {
			pipe = append(pipe, plotter.XY{X: x, Y: s.Max.EventsPerSec})
			floor = append(floor, plotter.XY{X: x, Y: s.ConsumeFloor.EventsPerSec})
			rss = append(rss, plotter.XY{X: x, Y: mib(s.Memory.PeakRSSBytes)})
			redisMem = append(redisMem, plotter.XY{X: x, Y: mib(s.Memory.RedisUsedMemoryBytes)})
		}
	}
	if len(pipe) == 0 {
		return nil
	}
	if err := plotutil.AddLinePoints(rate, "pipeline (durable)", pipe, "consume+decode floor", floor); err != nil {
		return err
	}
	if err := plotutil.AddLinePoints(mem, "ingester peak RSS", rss, "Redis used_memory (delta)", redisMem); err != nil {
		return err
	}
	for _, s := range r.Scales {
		bd := s.Bounded
		if bd == nil {
			continue
		}
		x := float64(s.Users)
		pts, err := plotter.NewScatter(plotter.XYs{{X: x, Y: mib(bd.PeakRSSBytes)}, {X: x, Y: mib(bd.RedisUsedMemoryBytes)}})
		if err != nil {
			return err
		}
		pts.Shape, pts.Color = draw.CrossGlyph{}, color.Black
		pts.Radius = vg.Points(5)
		mem.Add(pts)
		mem.Legend.Add(fmt.Sprintf("same, cache %d/partition, TTL %s (at its end)", bd.CacheUsers, bd.TTL), pts)
		if bd.Waited != "" {
			after, err := plotter.NewScatter(plotter.XYs{{X: x, Y: mib(bd.RedisUsedMemoryAfterTTLBytes)}})
			if err != nil {
				return err
			}
			after.Shape, after.Color = draw.CircleGlyph{}, color.Black
			after.Radius = vg.Points(4)
			mem.Add(after)
			mem.Legend.Add(fmt.Sprintf("its Redis used_memory %s later", bd.Waited), after)
		}
	}
	rate.Y.Min, mem.Y.Min = 0, 0
	rate.Legend.Top, rate.Legend.Left, mem.Legend.Top, mem.Legend.Left = true, true, true, true
	rate.Add(plotter.NewGrid())
	mem.Add(plotter.NewGrid())
	const w, h = 10 * vg.Inch, 4 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{rate, mem}}, tiles, dc)
	rate.Draw(canvases[0][0])
	mem.Draw(canvases[0][1])
	return savePNG(img, filepath.Join(dir, PlotScaling))
}

func savePNG(c *vgimg.Canvas, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
