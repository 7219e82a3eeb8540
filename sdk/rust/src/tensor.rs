//! Host tensors, autograd and optimisers (capability `tensors`, docs/abi.md §3).

use crate::json::{self, Value};
use crate::{check, sys, Error, Result, Status};

/// A tensor element type. Values cross the ABI as little-endian raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I32,
    I64,
}

impl DType {
    /// The ABI's name of the dtype: `f32`, `i32` or `i64`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }

    fn from_name(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            "i32" => Some(DType::I32),
            "i64" => Some(DType::I64),
            _ => None,
        }
    }
}

fn bad_payload(message: String) -> Error {
    Error::Host { status: Status::BadPayload, message }
}

fn shape_json(shape: &[usize]) -> Value {
    Value::Array(shape.iter().map(|&d| Value::from(d)).collect())
}

/// A tensor that lives on the host (on its GPU when it has one), driven by handle. Ops run on the
/// host and return new tensors; autograd records them, so [`Tensor::backward`] on a loss fills
/// the gradients of the leaves made with `requires_grad`.
///
/// A tensor lives until [`Tensor::free`] or the end of the call that made it; an actor's tensors
/// live as long as the actor. Every tensor of a job counts against the job's tensor budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tensor(i64);

impl Tensor {
    /// Makes a tensor of `dtype` and `shape` from `data`, its little-endian raw values in
    /// row-major order (empty: zeros). `requires_grad` (f32 only) makes a leaf with a gradient.
    pub fn from_raw(dtype: DType, shape: &[usize], data: &[u8], requires_grad: bool) -> Result<Tensor> {
        let mut spec = Value::object().with("dtype", dtype.name()).with("shape", shape_json(shape));
        if requires_grad {
            spec.set("requires_grad", true);
        }
        check(sys::tensor_create(&spec.to_bytes(), data)).map(Tensor)
    }

    /// Makes a float32 tensor of `shape` from `data` (empty: zeros).
    pub fn new(shape: &[usize], data: &[f32], requires_grad: bool) -> Result<Tensor> {
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_raw(DType::F32, shape, &raw, requires_grad)
    }

    /// Makes a float32 tensor of zeros.
    pub fn zeros(shape: &[usize], requires_grad: bool) -> Result<Tensor> {
        Tensor::from_raw(DType::F32, shape, &[], requires_grad)
    }

    /// Makes an int64 tensor (labels, embedding indices) of `shape` from `data` (empty: zeros).
    pub fn from_i64(shape: &[usize], data: &[i64]) -> Result<Tensor> {
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_raw(DType::I64, shape, &raw, false)
    }

    /// The tensor of a handle the ABI numbers so.
    pub fn from_handle(h: i64) -> Tensor {
        Tensor(h)
    }

    /// The tensor's host handle.
    pub fn handle(self) -> i64 {
        self.0
    }

    /// Runs host op `name` (docs/abi.md §3: matmul, add, relu, sum, reshape, conv2d, ...) on
    /// `inputs` with `attrs`, a JSON object of the op's attributes (`Value::Null` for none).
    pub fn op(name: &str, inputs: &[Tensor], attrs: Value) -> Result<Tensor> {
        let ins: Vec<Value> = inputs.iter().map(|t| Value::from(t.0)).collect();
        let mut req = Value::object().with("op", name).with("inputs", Value::Array(ins));
        if !attrs.is_null() {
            req.set("attrs", attrs);
        }
        check(sys::tensor_op(&req.to_bytes())).map(Tensor)
    }

    /// The (batched, broadcasting) matrix product self·other.
    pub fn matmul(self, other: Tensor) -> Result<Tensor> {
        Tensor::op("matmul", &[self, other], Value::Null)
    }

    /// self + other, broadcasting.
    pub fn add(self, other: Tensor) -> Result<Tensor> {
        Tensor::op("add", &[self, other], Value::Null)
    }

    /// self - other, broadcasting.
    pub fn sub(self, other: Tensor) -> Result<Tensor> {
        Tensor::op("sub", &[self, other], Value::Null)
    }

    /// self · other elementwise, broadcasting.
    pub fn mul(self, other: Tensor) -> Result<Tensor> {
        Tensor::op("mul", &[self, other], Value::Null)
    }

    /// max(self, 0).
    pub fn relu(self) -> Result<Tensor> {
        Tensor::op("relu", &[self], Value::Null)
    }

    /// A view of the tensor with `shape` (one dim may be -1).
    pub fn reshape(self, shape: &[i64]) -> Result<Tensor> {
        let s = Value::Array(shape.iter().map(|&d| Value::from(d)).collect());
        Tensor::op("reshape", &[self], Value::object().with("shape", s))
    }

    /// Sums over every axis, to one element.
    pub fn sum(self) -> Result<Tensor> {
        Tensor::op("sum", &[self], Value::Null)
    }

    /// Averages over every axis, to one element.
    pub fn mean(self) -> Result<Tensor> {
        Tensor::op("mean", &[self], Value::Null)
    }

    /// The tensor's dtype and shape.
    pub fn info(self) -> Result<(DType, Vec<usize>)> {
        let n = check(sys::tensor_info(self.0))?;
        let b = sys::take_result(n);
        let v = json::parse(&b)?;
        let dtype = v.get("dtype").and_then(Value::as_str).and_then(DType::from_name);
        let shape: std::result::Result<Vec<usize>, String> = v.field("shape");
        match (dtype, shape) {
            (Some(d), Ok(s)) => Ok((d, s)),
            _ => Err(Error::Host { status: Status::Internal, message: format!("tensor_info: {v}") }),
        }
    }

    /// The tensor's shape.
    pub fn shape(self) -> Result<Vec<usize>> {
        self.info().map(|(_, s)| s)
    }

    /// The tensor's raw little-endian values, row-major.
    pub fn read_raw(self) -> Result<Vec<u8>> {
        let n = check(sys::tensor_read(self.0))?;
        Ok(sys::take_result(n))
    }

    /// A float32 tensor's values, row-major.
    pub fn to_vec(self) -> Result<Vec<f32>> {
        let (dtype, _) = self.info()?;
        if dtype != DType::F32 {
            return Err(bad_payload(format!("tensor {}: a {} tensor, not f32", self.0, dtype.name())));
        }
        let raw = self.read_raw()?;
        if raw.len() % 4 != 0 {
            return Err(bad_payload(format!("tensor {}: {} bytes is no whole f32", self.0, raw.len())));
        }
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// The value of a one-element float32 tensor, such as a loss.
    pub fn item(self) -> Result<f32> {
        let v = self.to_vec()?;
        if v.len() != 1 {
            return Err(bad_payload(format!("tensor item: {} elements, not one", v.len())));
        }
        Ok(v[0])
    }

    /// Runs reverse-mode autograd from this one-element tensor (a loss): the leaves it depends
    /// on that require grad accumulate their gradients.
    pub fn backward(self) -> Result<()> {
        check(sys::tensor_backward(self.0) as i64).map(|_| ())
    }

    /// A copy of the gradient backward accumulated in this leaf.
    pub fn grad(self) -> Result<Tensor> {
        check(sys::tensor_grad(self.0)).map(Tensor)
    }

    /// Frees the tensor now; its handle is unknown after.
    pub fn free(self) -> Result<()> {
        check(sys::tensor_free(self.0) as i64).map(|_| ())
    }
}

/// An optimiser that updates parameter tensors from their gradients, on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Optimizer(i64);

impl Optimizer {
    /// Makes an optimiser from an optim_create request (`kind`, `lr` and the kind's options:
    /// `momentum`, `weight_decay`, `betas`, `eps`); its `params` are set from `params`.
    pub fn create(mut request: Value, params: &[Tensor]) -> Result<Optimizer> {
        let ps: Vec<Value> = params.iter().map(|t| Value::from(t.0)).collect();
        request.set("params", Value::Array(ps));
        check(sys::optim_create(&request.to_bytes())).map(Optimizer)
    }

    /// An SGD optimiser with momentum.
    pub fn sgd(params: &[Tensor], lr: f64, momentum: f64) -> Result<Optimizer> {
        let req = Value::object().with("kind", "sgd").with("lr", lr).with("momentum", momentum);
        Optimizer::create(req, params)
    }

    /// An AdamW optimiser (decoupled weight decay; the host's betas and eps).
    pub fn adamw(params: &[Tensor], lr: f64, weight_decay: f64) -> Result<Optimizer> {
        let req = Value::object().with("kind", "adamw").with("lr", lr).with("weight_decay", weight_decay);
        Optimizer::create(req, params)
    }

    /// The optimiser's host handle.
    pub fn handle(self) -> i64 {
        self.0
    }

    /// Updates the parameters from their gradients.
    pub fn step(self) -> Result<()> {
        check(sys::optim_step(self.0) as i64).map(|_| ())
    }

    /// Clears the parameters' gradients; call it before each backward.
    pub fn zero_grad(self) -> Result<()> {
        check(sys::optim_zero_grad(self.0) as i64).map(|_| ())
    }
}
