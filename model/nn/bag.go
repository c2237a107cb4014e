package nn

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// bagLayout is one token field's bags for the current batch in CSR form:
// example i's bucket ids are ids[offsets[i]:offsets[i+1]]. The Network
// refills it before every run; the graph's ops read it when they execute, so
// the graph itself never changes.
type bagLayout struct {
	rows    int
	offsets []int // rows+1 entries
	ids     []int
}

func newBagLayout(rows int) *bagLayout {
	return &bagLayout{rows: rows, offsets: make([]int, rows+1)}
}

// fill sets the layout from the examples' bags for field (validated ids);
// rows past len(exs) are empty.
func (l *bagLayout) fill(exs []Example, field string) {
	l.ids = l.ids[:0]
	for i := 0; i < l.rows; i++ {
		l.offsets[i] = len(l.ids)
		if i < len(exs) {
			for _, id := range exs[i].Tokens[field] {
				l.ids = append(l.ids, int(id))
			}
		}
	}
	l.offsets[l.rows] = len(l.ids)
}

// bagMeanOp is a gorgonia Op mapping an embedding table (buckets x dim) to
// the mean embedding of every bag in its layout (rows x dim). It costs
// O(tokens x dim), unlike a dense averaging-matrix product, which costs
// O(rows x buckets x dim) and would need a rows x buckets input.
type bagMeanOp struct {
	layout *bagLayout
	name   string
}

var (
	_ gorgonia.Op              = (*bagMeanOp)(nil)
	_ gorgonia.SDOp            = (*bagMeanOp)(nil)
	_ gorgonia.UsePreallocDoer = (*bagMeanOp)(nil)
	_ gorgonia.Op              = (*bagMeanGradOp)(nil)
	_ gorgonia.UsePreallocDoer = (*bagMeanGradOp)(nil)
)

// bagMeanNode applies a bagMeanOp reading layout to table.
func bagMeanNode(table *gorgonia.Node, layout *bagLayout, name string) (*gorgonia.Node, error) {
	return gorgonia.ApplyOp(&bagMeanOp{layout: layout, name: name}, table)
}

func matrixType() hm.Type { return gorgonia.TensorType{Dims: 2, Of: tensor.Float64} }

func (op *bagMeanOp) Arity() int        { return 1 }
func (op *bagMeanOp) Type() hm.Type     { return hm.NewFnType(matrixType(), matrixType()) }
func (op *bagMeanOp) ReturnsPtr() bool  { return false }
func (op *bagMeanOp) CallsExtern() bool { return false }
func (op *bagMeanOp) OverwritesInput() int {
	return -1
}
func (op *bagMeanOp) String() string { return "BagMean(" + op.name + ")" }
func (op *bagMeanOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "BagMean %s %p", op.name, op.layout)
}
func (op *bagMeanOp) Hashcode() uint32 { return opHash(op) }

func (op *bagMeanOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 1 {
		return nil, errors.New("nn: BagMean takes one input")
	}
	d, err := inputs[0].DimSize(1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{op.layout.rows, d}, nil
}

func (op *bagMeanOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	return op.UsePreallocDo(nil, inputs...)
}

func (op *bagMeanOp) UsePreallocDo(prealloc gorgonia.Value, inputs ...gorgonia.Value) (gorgonia.Value, error) {
	table, shape, err := denseInput(inputs, 1)
	if err != nil {
		return nil, err
	}
	d := shape[1]
	out, err := preallocated(prealloc, op.layout.rows, d)
	if err != nil {
		return nil, err
	}
	data := out.Data().([]float64)
	l := op.layout
	for i := 0; i < l.rows; i++ {
		ids := l.ids[l.offsets[i]:l.offsets[i+1]]
		row := data[i*d : (i+1)*d]
		clear(row)
		if len(ids) == 0 {
			continue
		}
		for _, id := range ids {
			for j, v := range table[id*d : (id+1)*d] {
				row[j] += v
			}
		}
		inv := 1 / float64(len(ids))
		for j := range row {
			row[j] *= inv
		}
	}
	return out, nil
}

func (op *bagMeanOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *bagMeanOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, errors.New("nn: BagMean takes one input")
	}
	buckets, err := inputs[0].Shape().DimSize(0)
	if err != nil {
		return nil, err
	}
	g, err := gorgonia.ApplyOp(&bagMeanGradOp{fwd: op, buckets: buckets}, grad)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{g}, nil
}

// bagMeanGradOp maps the gradient of BagMean's output (rows x dim) to the
// gradient of its table (buckets x dim): each bag's gradient row, divided by
// the bag's size, is added to the row of every id in it.
type bagMeanGradOp struct {
	fwd     *bagMeanOp
	buckets int
}

func (op *bagMeanGradOp) Arity() int        { return 1 }
func (op *bagMeanGradOp) Type() hm.Type     { return hm.NewFnType(matrixType(), matrixType()) }
func (op *bagMeanGradOp) ReturnsPtr() bool  { return false }
func (op *bagMeanGradOp) CallsExtern() bool { return false }
func (op *bagMeanGradOp) OverwritesInput() int {
	return -1
}
func (op *bagMeanGradOp) String() string { return "BagMeanGrad(" + op.fwd.name + ")" }
func (op *bagMeanGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "BagMeanGrad %s %p", op.fwd.name, op.fwd.layout)
}
func (op *bagMeanGradOp) Hashcode() uint32 { return opHash(op) }

func (op *bagMeanGradOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 1 {
		return nil, errors.New("nn: BagMeanGrad takes one input")
	}
	d, err := inputs[0].DimSize(1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{op.buckets, d}, nil
}

func (op *bagMeanGradOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	return op.UsePreallocDo(nil, inputs...)
}

func (op *bagMeanGradOp) UsePreallocDo(prealloc gorgonia.Value, inputs ...gorgonia.Value) (gorgonia.Value, error) {
	grad, shape, err := denseInput(inputs, 1)
	if err != nil {
		return nil, err
	}
	d := shape[1]
	out, err := preallocated(prealloc, op.buckets, d)
	if err != nil {
		return nil, err
	}
	data := out.Data().([]float64)
	clear(data)
	l := op.fwd.layout
	for i := 0; i < l.rows; i++ {
		ids := l.ids[l.offsets[i]:l.offsets[i+1]]
		if len(ids) == 0 {
			continue
		}
		inv := 1 / float64(len(ids))
		g := grad[i*d : (i+1)*d]
		for _, id := range ids {
			row := data[id*d : (id+1)*d]
			for j, v := range g {
				row[j] += v * inv
			}
		}
	}
	return out, nil
}

// denseInput returns the float64 data and shape of a single matrix input.
func denseInput(inputs []gorgonia.Value, arity int) ([]float64, tensor.Shape, error) {
	if len(inputs) != arity {
		return nil, nil, fmt.Errorf("nn: op got %d inputs, want %d", len(inputs), arity)
	}
	t, ok := inputs[0].(tensor.Tensor)
	if !ok {
		return nil, nil, fmt.Errorf("nn: op input is %T, want a tensor", inputs[0])
	}
	data, ok := t.Data().([]float64)
	if !ok || t.Dims() != 2 {
		return nil, nil, fmt.Errorf("nn: op input is a %v %v tensor, want a float64 matrix", t.Dtype(), t.Shape())
	}
	return data, t.Shape(), nil
}

// preallocated returns prealloc when it is a rows x cols float64 matrix,
// else a new one.
func preallocated(prealloc gorgonia.Value, rows, cols int) (*tensor.Dense, error) {
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == tensor.Float64 && d.Shape().Eq(tensor.Shape{rows, cols}) {
		return d, nil
	}
	return tensor.New(tensor.WithShape(rows, cols), tensor.Of(tensor.Float64)), nil
}

func opHash(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
