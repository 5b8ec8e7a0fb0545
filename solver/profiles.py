"""Estimated model profiles from public throughput figures, for planning before measurements exist.

The rule is documented in docs/sample_fleet.md and produced the sample fleet's profiles:

- reference: MLPerf Inference v4.1, Llama 2 70B, server scenario, per GPU (tokens/s) and mean TTFT;
  H100 PCIe / NVL scaled from H100 SXM by HBM bandwidth (throughput) and dense compute (TTFT);
- GPUs per replica: the smallest power of two whose memory holds the weights x 1.2;
- tokens/s per replica: per-GPU reference x 70 / active params x (0.5 if MoE) x 0.6 x GPUs, rounded to 10;
- service latency: reference TTFT x active params / 70, at least 50 ms.
"""

from __future__ import annotations

import math

from solver.domain import GPU_SPECS, GpuType, ModelProfile

# Per GPU, rounded: 8x H100 21,605.79 / 8; 8x H200 29,228.22 / 8; 8x MI300X 21,028.23 / 8; H100 PCIe and
# NVL = H100 x 2.0/3.35 and x 3.9/3.35 (HBM TB/s).
REFERENCE_TOKENS_PER_GPU: dict[GpuType, int] = {
    GpuType.H100: 2701,
    GpuType.H200: 3654,
    GpuType.MI300X: 2629,
    GpuType.H100_PCIE: 1613,
    GpuType.H100_NVL: 3144,
}
# Mean TTFT; H100 PCIe and NVL = H100 x 989/756 and x 989/835 (dense FP16 TFLOPS).
REFERENCE_TTFT_MS: dict[GpuType, int] = {
    GpuType.H100: 276,
    GpuType.H200: 198,
    GpuType.MI300X: 1006,
    GpuType.H100_PCIE: 361,
    GpuType.H100_NVL: 327,
}
REFERENCE_ACTIVE_PARAMS_B = 70.0
MEMORY_HEADROOM = 1.2
MOE_EFFICIENCY = 0.5
INTERACTIVE_DERATING = 0.6
MIN_SERVICE_LATENCY_MS = 50


def _next_power_of_two(value: float) -> int:
    power = 1
    while power < value:
        power *= 2
    return power


def estimate_profile(
    gpu_type: GpuType, *, active_params_b: float, weights_gb: float, moe: bool = False
) -> ModelProfile:
    spec = GPU_SPECS[gpu_type]
    gpus = _next_power_of_two(math.ceil(weights_gb * MEMORY_HEADROOM / spec.memory_gib))
    per_gpu = (
        REFERENCE_TOKENS_PER_GPU[gpu_type]
        * (REFERENCE_ACTIVE_PARAMS_B / active_params_b)
        * (MOE_EFFICIENCY if moe else 1.0)
        * INTERACTIVE_DERATING
    )
    tokens = max(10, round(per_gpu * gpus, -1))
    latency = max(MIN_SERVICE_LATENCY_MS, round(REFERENCE_TTFT_MS[gpu_type] * active_params_b / 70.0))
    return ModelProfile(
        gpu_type=gpu_type,
        gpus_per_replica=gpus,
        tokens_per_s_per_replica=int(tokens),
        service_latency_ms=latency,
        source="estimated (solver.profiles): MLPerf Inference v4.1 Llama-2-70B server figures",
    )


def estimate_profiles(
    *, active_params_b: float, weights_gb: float, moe: bool = False, latency_slo_ms: int | None = None
) -> tuple[ModelProfile, ...]:
    """One profile per GPU type, leaving out those whose service latency alone exceeds the SLO."""
    profiles = [
        estimate_profile(gpu_type, active_params_b=active_params_b, weights_gb=weights_gb, moe=moe)
        for gpu_type in GpuType
    ]
    if latency_slo_ms is not None:
        profiles = [p for p in profiles if p.service_latency_ms < latency_slo_ms]
    return tuple(profiles)
