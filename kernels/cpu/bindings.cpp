// The Python module of the CPU kernels: one entry per op (each defined in its own .cpp beside this file).
// Each releases the GIL while it runs, as torch's own ops do: the engine steps in its own thread, and the
// proxy's event loop (or a second engine) keeps running Python meanwhile. The kernels touch no Python object.
#include <torch/extension.h>

namespace tamer_cpu {
void paged_decode_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                            const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                            at::Tensor& out);
void rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& out);
void fused_add_rms_norm(at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps);
void rotary_embedding(at::Tensor& query, at::Tensor& key, const at::Tensor& cos, const at::Tensor& sin,
                      bool is_neox);
void silu_and_mul(const at::Tensor& x, at::Tensor& out);
void store_kv_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache, at::Tensor& value_cache,
                    const at::Tensor& slot_mapping);
}  // namespace tamer_cpu

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using release_gil = py::call_guard<py::gil_scoped_release>;
  m.def("paged_decode_attention", &tamer_cpu::paged_decode_attention, "paged decode attention, read in place",
        release_gil());
  m.def("rms_norm", &tamer_cpu::rms_norm, "RMSNorm into out", release_gil());
  m.def("fused_add_rms_norm", &tamer_cpu::fused_add_rms_norm, "residual add + RMSNorm, in place", release_gil());
  m.def("rotary_embedding", &tamer_cpu::rotary_embedding, "rotary embedding of q and k, in place", release_gil());
  m.def("silu_and_mul", &tamer_cpu::silu_and_mul, "SwiGLU gate into out", release_gil());
  m.def("store_kv_cache", &tamer_cpu::store_kv_cache, "new keys and values into their cache slots", release_gil());
}
