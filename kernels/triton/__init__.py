"""Triton kernels of the hot ops, one file each; every launcher has the signature of its `kernels.reference` twin.

Importing a module here imports triton. Under `TRITON_INTERPRET=1` (set before these modules are imported)
the kernels run on CPU tensors in triton's interpreter, which is how CI checks them without a GPU.
"""
