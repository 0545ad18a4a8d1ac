# ``cimport mmio`` gives Cython code the Mapping type (see _mapping.pxd).
from mmio._mapping cimport Mapping
