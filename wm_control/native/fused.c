/*
 * Fused LayerNorm + activation kernels for wm-control (CPU, float32, row-major, contiguous).
 *
 * y = act(gamma * (u - mean) / sqrt(var + eps) + beta) with u = x + pre_bias (the bias of the linear
 * layer before, folded in so the GEMM can run without a bias copy), act in {Mish, SimNorm, identity},
 * row by row; row r uses affine parameters (r / rows_per_affine) % n_affine, so stacked Q-ensemble
 * heads can be laid out head-major or row-major.
 * The backward kernel recomputes the normalised input from the saved per-row mean and 1/std.
 *
 * Compiled at first use by wm_control/native/__init__.py (-O3 -march=native -fopenmp and the
 * reassociation flags of fast-math, not -ffast-math itself); the exponential is a local polynomial so
 * that loops vectorise without libmvec.
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ACT_MISH 0
#define ACT_SIMNORM 1
#define ACT_NONE 2

/* exp(x) for x in [-87, 88]: Cody-Waite reduction to r in [-ln2/2, ln2/2], then a degree-5 polynomial
 * fitted for minimal relative error on that interval (9e-8 in exact arithmetic, ~2 ulp in float). */
static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x); /* NaN passes through */
    float n = __builtin_roundf(x * 1.44269504088896341f);
    /* explicit fmaf keeps the two-constant reduction exact under -fassociative-math */
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 8.290315541e-3f;
    p = fmaf(p, r, 4.189793177e-2f);
    p = fmaf(p, r, 1.666763619e-1f);
    p = fmaf(p, r, 4.999914951e-1f);
    p = fmaf(p, r, 9.999997072e-1f);
    p = fmaf(p, r, 1.0f);
    int32_t bits;
    memcpy(&bits, &p, sizeof(bits));
    bits += (int32_t)n << 23;
    float out;
    memcpy(&out, &bits, sizeof(out));
    return out;
}

/* mish(u) = u * tanh(softplus(u)) = u - 2u / ((e^u + 1)^2 + 1) */
static inline float mish(float u) {
    float e = fast_expf(u < 20.0f ? u : 20.0f);
    float t = (e + 1.0f) * (e + 1.0f) + 1.0f;
    return u - 2.0f * u / t;
}

/* d mish / du = 1 - 2/t + 4 u e (e + 1) / t^2 with t = (e + 1)^2 + 1 */
static inline float mish_grad(float u) {
    float e = fast_expf(u < 20.0f ? u : 20.0f);
    float t = (e + 1.0f) * (e + 1.0f) + 1.0f;
    float inv = 1.0f / t;
    return 1.0f + inv * (4.0f * u * e * (e + 1.0f) * inv - 2.0f);
}

/* Mean and 1/std of a row in one pass; shifting by the first element keeps E[x^2] - E[x]^2 from
 * cancelling when the mean is large compared with the spread. */
static void row_stats(const float *x, int64_t cols, float eps, float *mean_out, float *rstd_out) {
    const float k = x[0];
    float s = 0.0f, q = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
        float d = x[j] - k;
        s += d;
        q += d * d;
    }
    float m = s / (float)cols;
    float var = q / (float)cols - m * m;
    *mean_out = k + m;
    *rstd_out = 1.0f / sqrtf((var > 0.0f ? var : 0.0f) + eps);
}

/* Softmax over consecutive groups. Inputs are LayerNorm outputs; clamping at 80 before exp (instead
 * of subtracting each group's max) keeps the loop vectorisable and only differs for inputs > 80. */
static void softmax_groups(float *u, int64_t cols, int64_t group) {
    for (int64_t j = 0; j < cols; ++j) u[j] = fast_expf(u[j] > 80.0f ? 80.0f : u[j]); /* NaN passes through */
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        float s = 0.0f;
        for (int64_t j = 0; j < group; ++j) s += u[g0 + j];
        float inv = 1.0f / s;
        for (int64_t j = 0; j < group; ++j) u[g0 + j] *= inv;
    }
}

void wm_ln_act_fwd(const float *x, const float *pre_bias, const float *gamma, const float *beta, float *y,
                   float *mean, float *rstd, int64_t rows, int64_t cols, int64_t rows_per_affine, int64_t n_affine,
                   int act, int64_t group, float eps) {
#pragma omp parallel for schedule(static) if (rows * cols >= 32768)
    for (int64_t r = 0; r < rows; ++r) {
        int64_t a = (r / rows_per_affine) % n_affine;
        const float *g = gamma + a * cols;
        const float *b = beta + a * cols;
        const float *pb = pre_bias ? pre_bias + a * cols : 0;
        float *yr = y + r * cols;
        const float *xr = x + r * cols;
        float mu, rs;
        if (pb) {
            const float k = xr[0] + pb[0];
            float s = 0.0f, q = 0.0f;
            for (int64_t j = 0; j < cols; ++j) { float d = xr[j] + pb[j] - k; s += d; q += d * d; }
            float m = s / (float)cols; float var = q / (float)cols - m * m;
            mu = k + m; rs = 1.0f / sqrtf((var > 0.0f ? var : 0.0f) + eps);
        } else {
            row_stats(xr, cols, eps, &mu, &rs);
        }
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
        /* fold LN into one affine per column: y = act(A_j * x + B_j) */
        if (act == ACT_MISH) {
            if (pb) for (int64_t j = 0; j < cols; ++j) yr[j] = mish(g[j] * rs * (xr[j] + pb[j] - mu) + b[j]);
            else for (int64_t j = 0; j < cols; ++j) yr[j] = mish(g[j] * rs * (xr[j] - mu) + b[j]);
        } else {
            if (pb) for (int64_t j = 0; j < cols; ++j) yr[j] = g[j] * rs * (xr[j] + pb[j] - mu) + b[j];
            else for (int64_t j = 0; j < cols; ++j) yr[j] = g[j] * rs * (xr[j] - mu) + b[j];
            if (act == ACT_SIMNORM) softmax_groups(yr, cols, group);
        }
    }
}

/*
 * Backward of wm_ln_act_fwd. y is the forward output (used by SimNorm), gy the incoming gradient.
 * Writes gx (rows x cols) and ggamma, gbeta, gpre_bias (n_affine x cols; gpre_bias may be NULL when
 * pre_bias is NULL). work must hold nthreads * n_affine * cols * 3 floats.
 */
void wm_ln_act_bwd(const float *x, const float *pre_bias, const float *gamma, const float *y, const float *mean,
                   const float *rstd, const float *gy, float *gx, float *ggamma, float *gbeta, float *gpre_bias,
                   float *work, int64_t rows, int64_t cols, int64_t rows_per_affine, int64_t n_affine, int act,
                   int64_t group, const float *beta, int nthreads) {
    int64_t n_aff = n_affine;
    size_t block = (size_t)n_aff * (size_t)cols;
    memset(work, 0, sizeof(float) * (size_t)nthreads * block * 3);
#pragma omp parallel num_threads(nthreads) if (rows * cols >= 32768)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *wg = work + (size_t)tid * block * 3;
        float *wb = wg + block;
        float *wx = wb + block;
        float *gu = (float *)malloc(sizeof(float) * (size_t)cols);
        float *u = (float *)malloc(sizeof(float) * (size_t)cols);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            int64_t a = (r / rows_per_affine) % n_aff;
            const float *xr = x + r * cols, *g = gamma + a * cols, *b = beta + a * cols;
            const float *gyr = gy + r * cols;
            float mu = mean[r], rs = rstd[r];
            if (pre_bias) {
                const float *pb = pre_bias + a * cols;
                for (int64_t j = 0; j < cols; ++j) u[j] = xr[j] + pb[j];
            } else {
                for (int64_t j = 0; j < cols; ++j) u[j] = xr[j];
            }
            if (act == ACT_MISH) {
                for (int64_t j = 0; j < cols; ++j) gu[j] = gyr[j] * mish_grad(g[j] * (u[j] - mu) * rs + b[j]);
            } else if (act == ACT_SIMNORM) {
                const float *yr = y + r * cols;
                for (int64_t g0 = 0; g0 < cols; g0 += group) {
                    float dot = 0.0f;
                    for (int64_t j = 0; j < group; ++j) dot += gyr[g0 + j] * yr[g0 + j];
                    for (int64_t j = 0; j < group; ++j) gu[g0 + j] = yr[g0 + j] * (gyr[g0 + j] - dot);
                }
            } else {
                for (int64_t j = 0; j < cols; ++j) gu[j] = gyr[j];
            }
            float s1 = 0.0f, s2 = 0.0f;
            float *wgr = wg + a * cols, *wbr = wb + a * cols, *wxr = wx + a * cols;
            for (int64_t j = 0; j < cols; ++j) {
                float xh = (u[j] - mu) * rs;
                wgr[j] += gu[j] * xh;
                wbr[j] += gu[j];
                float gxh = gu[j] * g[j];
                s1 += gxh;
                s2 += gxh * xh;
            }
            s1 /= (float)cols;
            s2 /= (float)cols;
            float *gxr = gx + r * cols;
            for (int64_t j = 0; j < cols; ++j) {
                float xh = (u[j] - mu) * rs;
                gxr[j] = rs * (gu[j] * g[j] - s1 - xh * s2);
                wxr[j] += gxr[j];
            }
        }
        free(gu);
        free(u);
    }
    for (size_t k = 0; k < block; ++k) {
        float sg = 0.0f, sb = 0.0f, sx = 0.0f;
        for (int t = 0; t < nthreads; ++t) {
            const float *w = work + (size_t)t * block * 3;
            sg += w[k];
            sb += w[block + k];
            sx += w[2 * block + k];
        }
        ggamma[k] = sg;
        gbeta[k] = sb;
        if (gpre_bias) gpre_bias[k] = sx;
    }
}

/* exp of each element (for accuracy tests of the polynomial). */
void wm_exp(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fast_expf(x[i]);
}

/* Mish alone (in place allowed): y = mish(x). */
void wm_mish_fwd(const float *x, float *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= 32768)
    for (int64_t i = 0; i < n; ++i) y[i] = mish(x[i]);
}

/*
 * Two-hot decoding: out[r] = symexp(sum_k softmax(l[r] + bias)_k * bin_k), bins uniform in [vmin, vmax].
 * Row r of the logits starts at r * stride (stride >= bins lets the GEMM before use padded columns);
 * it uses bias row (r / rows_per_bias) % n_bias, or no bias when bias is NULL.
 */
void wm_two_hot_inv(const float *logits, const float *bias, float *out, int64_t rows, int64_t bins, int64_t stride,
                    int64_t rows_per_bias, int64_t n_bias, float vmin, float vmax) {
    const float step = (vmax - vmin) / (float)(bins - 1);
#pragma omp parallel if (rows * bins >= 32768)
    {
        float *buf = (float *)malloc(sizeof(float) * (size_t)bins);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            const float *l = logits + r * stride;
            if (bias) {
                const float *b = bias + ((r / rows_per_bias) % n_bias) * bins;
                for (int64_t k = 0; k < bins; ++k) buf[k] = l[k] + b[k];
            } else {
                for (int64_t k = 0; k < bins; ++k) buf[k] = l[k];
            }
            float m = buf[0];
            for (int64_t k = 1; k < bins; ++k) m = buf[k] > m ? buf[k] : m;
            float s = 0.0f, w = 0.0f;
            const int nb = (int)bins; /* int32 index: int64 -> float does not vectorise on AVX2 */
            for (int k = 0; k < nb; ++k) {
                float e = fast_expf(buf[k] - m);
                s += e;
                w += e * (float)k;
            }
            float v = vmin + step * (w / s);
            float a = v < 0.0f ? -v : v;
            float ex = fast_expf(a) - 1.0f;
            out[r] = v < 0.0f ? -ex : ex;
        }
        free(buf);
    }
}
