// Package nn is streamprofile's multi-task neural network: trained
// continuously with gorgonia, scored in plain Go.
//
// # Architecture
//
// An Arch (config.go; YAML/JSON tags, documented defaults, Validate)
// declares the inputs, shape, heads and training settings. For one Example:
//
//  1. each numeric input x becomes squash(x) = log1p(x) for x >= 0 and
//     -log1p(-x) for x < 0, then is standardised with running statistics
//     (Welford mean and variance of the squashed values, updated only by
//     TrainBatch and frozen into each snapshot);
//  2. each token field contributes the mean of its bucket ids' embedding
//     rows (a bag of hashed embeddings, EmbedDim wide; an empty or absent
//     bag contributes zeros);
//  3. the concatenation goes through the shared ReLU layers (Arch.Hidden)
//     and one sigmoid output per head (Arch.Heads).
//
// The loss of a batch of n examples is the sum over heads of the binary
// cross-entropy, counted only where Example.Mask says the label is known,
// averaged over the n examples, plus Arch.L2 times the sum of squares of the
// weight matrices and embedding tables (not the biases). Cross-entropy is
// computed from logits as softplus(z) - z·y, which does not overflow.
//
// # Training
//
// A Network holds a gorgonia expression graph built once, for
// Arch.BatchSize rows, with its symbolic gradients (gorgonia.Grad), a tape
// machine (gorgonia.NewTapeMachine with BindDualValues) and a gorgonia
// solver (AdamSolver or VanillaSolver). TrainBatch refills the graph's
// input tensors in place, runs the tape, reads the cost through
// gorgonia.Read and steps the solver, one step per BatchSize examples; the
// last partial batch is padded with rows whose loss weight is zero, so the
// same graph and machine serve every batch. All values are float64.
//
// The embedding bags are a custom gorgonia op (bag.go, with its own
// symbolic gradient, a scatter-add) whose cost is proportional to the
// number of tokens rather than to HashBuckets. Its bags are set per batch
// through a layout the op reads when it runs; the graph never changes.
// TestGradientCheck compares the symbolic gradients of every parameter,
// including the embeddings, with central finite differences.
//
// A Network belongs to one goroutine. Snapshot copies its weights and
// normaliser into an immutable Model; NewNetworkFrom continues training
// (fine-tuning) from a Model, with fresh optimiser state.
//
// # Scoring
//
// Model.Predict runs the forward pass in plain Go over the snapshot's
// weights: no graph, no allocation besides the result (PredictInto
// allocates nothing), scratch space from a sync.Pool. It agrees with the
// gorgonia graph within 1e-9 (TestGraphAndPlainForwardAgree). A Model is
// safe for concurrent use; publish new ones to scorers with, for example,
// an atomic.Pointer.
//
// Model.Explain attributes each head's score to the inputs by occlusion:
// one forward pass per input (replaced by its baseline: the running mean,
// i.e. standardised 0, for numeric features, the empty bag for token fields,
// or the values of a given baseline Example) plus one.
//
// # Persistence
//
// Model.MarshalBinary / UnmarshalBinary (and Save / Load) use a canonical
// binary format with a magic number, a format version and a CRC-32C
// checksum (codec.go). Decoding validates everything (checksum, bounds,
// architecture, finiteness) before use and returns errors wrapping
// ErrCorrupt or ErrVersion, never panics (fuzzed); a loaded model scores
// bit-identically to the saved one.
//
// # Devices
//
// The engine is chosen in one place: device.go (default build) runs the
// tape machine on the CPU with gonum's pure-Go BLAS. device_cuda.go
// (go:build cuda) is written against gorgonia v0.9.18's CUDA build and is
// UNVERIFIED: it has never been compiled, linked or run here, because
// neither the CUDA toolkit nor a GPU is available; TestCUDABuildTypeChecks
// only type-checks it against gorgonia's cuda-tagged API with cgo faked.
// Building it needs:
//
//   - go build -tags cuda, with cgo enabled and a C compiler;
//   - the NVIDIA driver's libcuda.so (if only libcuda.so.1 exists, symlink
//     it), and the CUDA toolkit's headers and libcublas, by default under
//     /usr/local/cuda/{include,lib64} (else set CGO_CFLAGS/CGO_LDFLAGS);
//     gorgonia's documentation asks for CUDA toolkit 8.0 or later;
//   - cuDNN (libcudnn and cudnn.h): gorgonia's CUDA build imports
//     gorgonia.org/cu/dnn even though this network uses no cuDNN op;
//   - gorgonia.org/cu v0.9.4 (already in go.mod, required by gorgonia);
//   - for GPU element-wise kernels, a cudamodules.go generated in this
//     directory by `go run gorgonia.org/gorgonia/cmd/cudagen` on a machine
//     with nvcc and the target GPU (it compiles gorgonia's PTX kernels for
//     the GPU's compute capability and registers them with
//     gorgonia.AddToStdLib). Without it gorgonia silently runs element-wise
//     ops on the CPU and only matrix products use cuBLAS.
//
// Under the cuda tag gorgonia places every CUDA-capable op on device 0 by
// itself (UseCudaFor exists only in CPU builds, as a no-op); the
// embedding-bag op, reductions, the solver and the parameters stay on the
// host, and scoring is always plain Go on the CPU. For a network of this
// size (tens of thousands of parameters) the GPU is unlikely to beat the
// CPU: cgo calls and transfers dominate.
//
// # Performance
//
// go test -bench on the shared 2-core development machine (AMD EPYC, load
// average 10-20 from other work, so these are pessimistic), default Arch with
// 4 numeric features (about 28k parameters):
//
//	TrainBatch   batch 32: ~25k examples/s, 128: ~60-85k, 512: ~110-145k
//	             (per step about 2,150 allocations, mostly in gorgonia's Adam)
//	Predict      ~1.1-1.3 µs per score, 0 allocations with PredictInto
//	Explain      ~6.7 µs (8 inputs: 9 forward passes)
//	Snapshot     ~47 µs; MarshalBinary ~45 µs (210 kB)
//
// Rerun `go test -run XXX -bench . ./model/nn` for current numbers.
package nn
