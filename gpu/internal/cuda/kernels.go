package cuda

// kernelSource holds the elementwise kernels, compiled by NVRTC when the device opens. Each
// runs a grid-stride loop over n elements. Binary kernels broadcast their right operand by
// repeating it every nb elements (nb = n for equal shapes, nb = the trailing size for a bias).
const kernelSource = `
#define LOOP for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
extern "C" {
__global__ void add_f32(const float* a, const float* b, float* c, long long n, long long nb) { LOOP c[i] = a[i] + b[i % nb]; }
__global__ void sub_f32(const float* a, const float* b, float* c, long long n, long long nb) { LOOP c[i] = a[i] - b[i % nb]; }
__global__ void mul_f32(const float* a, const float* b, float* c, long long n, long long nb) { LOOP c[i] = a[i] * b[i % nb]; }
__global__ void div_f32(const float* a, const float* b, float* c, long long n, long long nb) { LOOP c[i] = a[i] / b[i % nb]; }
__global__ void exp_f32(const float* x, float* y, long long n) { LOOP y[i] = expf(x[i]); }
__global__ void log_f32(const float* x, float* y, long long n) { LOOP y[i] = logf(x[i]); }
__global__ void tanh_f32(const float* x, float* y, long long n) { LOOP y[i] = tanhf(x[i]); }
__global__ void sigmoid_f32(const float* x, float* y, long long n) { LOOP y[i] = 1.0f / (1.0f + expf(-x[i])); }
__global__ void relu_f32(const float* x, float* y, long long n) { LOOP y[i] = fmaxf(x[i], 0.0f); }
__global__ void gelu_f32(const float* x, float* y, long long n) { LOOP y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f)); }
__global__ void silu_f32(const float* x, float* y, long long n) { LOOP y[i] = x[i] / (1.0f + expf(-x[i])); }
__global__ void sqrt_f32(const float* x, float* y, long long n) { LOOP y[i] = sqrtf(x[i]); }
}
`

var kernelNames = []string{
	"add_f32", "sub_f32", "mul_f32", "div_f32",
	"exp_f32", "log_f32", "tanh_f32", "sigmoid_f32", "relu_f32", "gelu_f32", "silu_f32", "sqrt_f32",
}
