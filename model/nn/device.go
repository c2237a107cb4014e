//go:build !cuda

package nn

import "gorgonia.org/gorgonia"

// Backend names the engine the training graph runs on in this build.
const Backend = "cpu"

// newMachine is the one place the training graph's machine is chosen. This
// build runs gorgonia's tape machine on the CPU (gonum BLAS, float64).
func newMachine(g *gorgonia.ExprGraph, learnables gorgonia.Nodes) gorgonia.VM {
	return gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(learnables...))
}

// hostSide returns a node holding n's value in host memory, for
// gorgonia.Read. On the CPU every value already is.
func hostSide(n *gorgonia.Node) *gorgonia.Node { return n }
