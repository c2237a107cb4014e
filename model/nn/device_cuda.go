//go:build cuda

package nn

import "gorgonia.org/gorgonia"

// Backend names the engine the training graph runs on in this build.
const Backend = "cuda"

// newMachine is the one place the training graph's machine is chosen. Built
// with -tags cuda, gorgonia's compiler places every op implementing
// gorgonia.CUDADoer (element-wise arithmetic and matrix products) on device
// 0, inserts the host<->device transfers, and the tape machine creates its
// CUDA context, cuBLAS and cuDNN handles when constructed (it panics if that
// fails; assemble recovers the panic into an error). There is no per-op opt-in
// in gorgonia v0.9.18 under this tag: UseCudaFor exists only in CPU builds,
// as a no-op. Parameters, gradients and the solver stay in host memory.
//
// Unverified: this file has never been compiled or run here (no CUDA
// toolkit, no GPU). See the package documentation for what it needs.
func newMachine(g *gorgonia.ExprGraph, learnables gorgonia.Nodes) gorgonia.VM {
	return gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(learnables...))
}

// hostSide returns a node holding n's value in host memory, for
// gorgonia.Read: a same-shape Reshape, which is not a CUDADoer and so runs
// on the CPU after gorgonia copies n's device value back. Scalars (the
// cost, a Sum reduction) are already computed on the host.
func hostSide(n *gorgonia.Node) *gorgonia.Node {
	if n.IsScalar() {
		return n
	}
	return gorgonia.Must(gorgonia.Reshape(n, n.Shape().Clone()))
}
