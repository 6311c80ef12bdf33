package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// report is the table make bench prints.
type report struct {
	header   string
	sections []*section
}

// section is one block of the table: a title row with column headers, then rows whose first
// cell is a label. Notes follow the rows.
type section struct {
	title string
	cols  []string
	rows  [][]string
	notes []string
}

func newSection(title string, cols ...string) *section {
	return &section{title: title, cols: cols}
}

// add appends a row: the label, then at most one cell per column.
func (s *section) add(label string, cells ...string) {
	s.rows = append(s.rows, append([]string{"  " + label}, cells...))
}

func (s *section) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (r *report) write(w io.Writer) error {
	var b strings.Builder
	b.WriteString(r.header + "\n")
	pass, miss := 0, 0
	for _, s := range r.sections {
		b.WriteString("\n")
		all := append([][]string{append([]string{s.title}, s.cols...)}, s.rows...)
		widths := map[int]int{}
		for _, row := range all {
			for i, c := range row {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
		for _, row := range all {
			var line strings.Builder
			for i, c := range row {
				pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
				switch {
				case i == 0:
					line.WriteString(c + pad)
				case i == len(s.cols): // the verdict: left-aligned, last
					line.WriteString("  " + c)
				default:
					line.WriteString("  " + pad + c)
				}
				switch c {
				case "PASS":
					pass++
				case "MISS":
					miss++
				}
			}
			b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
		}
		for _, n := range s.notes {
			b.WriteString("  * " + n + "\n")
		}
	}
	fmt.Fprintf(&b, "\ntargets: %d PASS, %d MISS\n", pass, miss)
	_, err := io.WriteString(w, b.String())
	return err
}

// verdict is PASS when ok.
func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// count formats n with thousands separators: 41,200.
func count(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ratio formats x as 0.97×.
func ratio(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) + "×" }

// micros formats d in microseconds: 48.2µs.
func micros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 1, 64) + "µs"
}

// mib formats a byte count in MiB: 11.4 MiB.
func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
