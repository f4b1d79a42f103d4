// Stand-in for the CUDA header of this name (see cuda_emulation.h).
#include "cuda_emulation.h"
