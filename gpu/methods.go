package gpu

// The methods below are the panicking forms of the package functions of the same names, for Go
// code that owns its shapes: each panics with the *OpError the function would have returned.
// Use [Try] to turn such a panic into an error.

func (t *Tensor) Add(u *Tensor) *Tensor        { return must(Add(t, u)) }
func (t *Tensor) Sub(u *Tensor) *Tensor        { return must(Sub(t, u)) }
func (t *Tensor) Mul(u *Tensor) *Tensor        { return must(Mul(t, u)) }
func (t *Tensor) Div(u *Tensor) *Tensor        { return must(Div(t, u)) }
func (t *Tensor) MatMul(u *Tensor) *Tensor     { return must(MatMul(t, u)) }
func (t *Tensor) Scale(s, c float32) *Tensor   { return must(Scale(t, s, c)) }
func (t *Tensor) Neg() *Tensor                 { return must(Neg(t)) }
func (t *Tensor) Exp() *Tensor                 { return must(Exp(t)) }
func (t *Tensor) Log() *Tensor                 { return must(Log(t)) }
func (t *Tensor) Tanh() *Tensor                { return must(Tanh(t)) }
func (t *Tensor) Sigmoid() *Tensor             { return must(Sigmoid(t)) }
func (t *Tensor) ReLU() *Tensor                { return must(ReLU(t)) }
func (t *Tensor) GELU() *Tensor                { return must(GELU(t)) }
func (t *Tensor) SiLU() *Tensor                { return must(SiLU(t)) }
func (t *Tensor) Sqrt() *Tensor                { return must(Sqrt(t)) }
func (t *Tensor) Sum(axes ...int) *Tensor      { return must(Sum(t, axes, false)) }
func (t *Tensor) Mean(axes ...int) *Tensor     { return must(Mean(t, axes, false)) }
func (t *Tensor) Max(axes ...int) *Tensor      { return must(Max(t, axes, false)) }
func (t *Tensor) Softmax(axis int) *Tensor     { return must(Softmax(t, axis)) }
func (t *Tensor) LogSoftmax(axis int) *Tensor  { return must(LogSoftmax(t, axis)) }
func (t *Tensor) Reshape(shape ...int) *Tensor { return must(Reshape(t, shape...)) }
func (t *Tensor) Permute(perm ...int) *Tensor  { return must(Permute(t, perm...)) }
func (t *Tensor) Transpose(d0, d1 int) *Tensor { return must(Transpose(t, d0, d1)) }
func (t *Tensor) Slice(axis, start, end int) *Tensor {
	return must(Slice(t, axis, start, end))
}
func (t *Tensor) Contiguous() *Tensor                    { return must(Contiguous(t)) }
func (t *Tensor) BroadcastTo(shape ...int) *Tensor       { return must(BroadcastTo(t, shape...)) }
func (t *Tensor) To(dev Device) *Tensor                  { return must(To(t, dev)) }
func (t *Tensor) Dropout(p float32, seed uint64) *Tensor { return must(Dropout(t, p, seed)) }
