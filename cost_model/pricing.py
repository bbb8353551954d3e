"""Per-token pricing: what a request costs on a deployment billed per input and output token."""

from __future__ import annotations


def estimate_cost_usd(input_tokens: float, output_tokens: float, usd_per_1m_input_tokens: float,
                      usd_per_1m_output_tokens: float) -> float:
    """cost = input_tokens * in_price / 1e6 + output_tokens * out_price / 1e6."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got input={input_tokens}, output={output_tokens}")
    return (input_tokens * usd_per_1m_input_tokens + output_tokens * usd_per_1m_output_tokens) / 1e6
