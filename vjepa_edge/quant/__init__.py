"""int8 quantization of students: a registry of schemes (`list_schemes`), each the library's own quantizer."""

from vjepa_edge.quant.schemes import Scheme, check_scheme, get_scheme, list_schemes

__all__ = ["Scheme", "check_scheme", "get_scheme", "list_schemes"]
