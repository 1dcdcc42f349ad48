package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sort"
)

// palette gives each curve a stable colour: hermesd warm, direct cool.
var palette = map[string]string{
	"hermesd ttft":    "#d62728",
	"hermesd latency": "#ff7f0e",
	"direct ttft":     "#1f77b4",
	"direct latency":  "#17becf",
}

// WriteSVG draws r's curves: latency (ms) at each of CurveQuantiles, one
// polyline per curve, so hermesd and direct are read side by side.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		width, height          = 720, 420
		left, right, top, base = 70, 190, 40, 360
	)
	names := make([]string, 0, len(r.Curves))
	top1 := 0.0
	for name, c := range r.Curves {
		names = append(names, name)
		for _, v := range c {
			top1 = math.Max(top1, v)
		}
	}
	sort.Strings(names)
	ymax := niceCeil(top1)
	x := func(i int) float64 {
		return left + float64(i)*float64(width-left-right)/float64(len(CurveQuantiles)-1)
	}
	y := func(v float64) float64 { return base - v/ymax*float64(base-top) }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14">%s</text>`+"\n", left, esc(fmt.Sprintf("%s, %d clients: latency by percentile (ms)", r.Scenario, r.Concurrency)))
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, base, width-right, base)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, base)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), width-right, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, esc(fmt.Sprintf("%.3g", v)))
	}
	for i, q := range CurveQuantiles {
		label := fmt.Sprintf("p%g", q*100)
		if q == 1 {
			label = "max"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), base+18, esc(label))
	}
	// Curves and legend.
	for n, name := range names {
		colour, ok := palette[name]
		if !ok {
			colour = "#7f7f7f"
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, colour)
		for i, v := range r.Curves[name] {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(i), y(v))
		}
		b.WriteString(`"><title>` + esc(name) + "</title></polyline>\n")
		ly := top + 20*n
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", width-right+15, ly, width-right+35, ly, colour)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", width-right+40, ly+4, esc(name))
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so axis labels
// read cleanly; an empty plot gets an axis of 1.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
