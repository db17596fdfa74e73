/* Exact top-k / top-p / min-p sampling over a large vocabulary, without sorting it.
 *
 * The distribution is the softmax of logits / temperature over the whole vocabulary. top_k keeps the k
 * most probable tokens; top_p then keeps the shortest most-probable prefix whose mass (relative to what
 * top_k kept) reaches p; min_p keeps tokens at least min_p times as probable as the best. All three are
 * prefixes of one order (probability descending, token id ascending on ties), so the kept set is the
 * shortest of them; the token is drawn from the kept set, renormalised.
 *
 * Why not llama.cpp's samplers: its top-p takes a softmax over all 262,144 Gemma tokens and sorts them
 * whenever the nucleus outgrows 256 tokens, about 4 ms a token. Here one vectorised pass finds each
 * 64-token block's maximum. Exponentials are computed only for blocks that can matter, and the mass of
 * the others is bounded from their maxima; only tokens that can be kept are sorted. When the bound leaves
 * the cut undecided, more blocks are evaluated, down to all of them. The one allowance: a remainder
 * bounded below 1e-7 of the partition function (less than float32 rounding of a sum over the
 * vocabulary) is treated as zero when it alone would move the cut.
 *
 * Called through ctypes (edge/runtime/nucleus.py); the Python module init at the end only makes the
 * shared object importable, so the package can locate it. Compiled with -ffinite-math-only for
 * vectorisation: no comparison here relies on infinities (-inf logits of banned tokens clamp to 0 weight).
 */

#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define NEGLIGIBLE_REMAINDER 1e-7 /* relative to the evaluated mass */

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define VECTORIZED __attribute__((target_clones("avx2", "default")))
#else
#define VECTORIZED
#endif

typedef struct {
    float weight; /* exp((logit - max) / temperature), in [0, 1] */
    float logit;  /* the order is decided on logits: exact, where weights may round two values together */
    int32_t id;
} candidate;

/* The memory one sampler reuses for every token, laid out by edge_scratch_init. */
typedef struct {
    float *weights;        /* n_vocab: valid inside evaluated blocks */
    float *block_max;      /* n_blocks */
    float *block_weight;   /* n_blocks: exp((block_max - max) / temperature) */
    uint8_t *evaluated;    /* n_blocks */
    candidate *candidates; /* n_vocab */
} scratch;

/* exp(x) for x <= 0, within 2 ulp; branchless so the loops that call it vectorise. Below -87 it is 0. */
static inline float exp_nonpositive(float x) {
    float clamped = x < -87.0f ? -87.0f : x;
    float n = floorf(clamped * 1.44269504088896341f + 0.5f);
    float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : p * scale;
}

static inline int32_t block_length(int32_t n_vocab, int32_t b) {
    return (b + 1) * BLOCK <= n_vocab ? BLOCK : n_vocab - b * BLOCK;
}

/* Every block's maximum and the overall one; -FLT_MAX means every logit is -inf (all banned). */
VECTORIZED
static float block_maxima(const float *restrict logits, int32_t n_vocab, float *restrict block_max) {
    int32_t n_blocks = (n_vocab + BLOCK - 1) / BLOCK;
    float best = -FLT_MAX;
    for (int32_t b = 0; b < n_blocks; b++) {
        const float *x = logits + (int64_t)b * BLOCK;
        int32_t length = block_length(n_vocab, b);
        float m = -FLT_MAX;
        if (length == BLOCK) {
            for (int32_t i = 0; i < BLOCK; i++) m = x[i] > m ? x[i] : m;
        } else {
            for (int32_t i = 0; i < length; i++) m = x[i] > m ? x[i] : m;
        }
        block_max[b] = m;
        best = m > best ? m : best;
    }
    return best;
}

static int32_t first_argmax(const float *logits, int32_t n_vocab, const float *block_max, float best) {
    int32_t b = 0;
    while (block_max[b] != best) b++;
    int32_t i = b * BLOCK;
    while (i < n_vocab && logits[i] != best) i++;
    return i;
}

static int by_probability_then_id(const void *left, const void *right) {
    const candidate *a = left, *b = right;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* What is known so far: the exact weights of evaluated blocks and bounds on the rest. */
typedef struct {
    const float *logits;
    int32_t n_vocab, n_blocks;
    float best, inverse_temperature;
    double evaluated_mass;    /* exact sum of the weights of evaluated tokens */
    double unevaluated_bound; /* upper bound on the summed weight of all other tokens */
    float unevaluated_max;    /* no unevaluated token weighs more than this */
    int32_t n_candidates;     /* evaluated tokens weighing at least the candidate threshold, sorted */
    int mass_exact;           /* evaluated_mass already counts every token */
    scratch *memory;
} evaluation;

VECTORIZED
static double evaluate_block(const float *restrict x, float *restrict w, int32_t length, float best,
                             float inverse_temperature) {
    float mass = 0.0f;
    for (int32_t i = 0; i < length; i++) {
        w[i] = exp_nonpositive((x[i] - best) * inverse_temperature);
        mass += w[i];
    }
    return mass;
}

/* The exact summed weight of every unevaluated block, without storing the weights. */
VECTORIZED
static double unevaluated_mass(const float *restrict logits, int32_t n_vocab, const uint8_t *restrict evaluated,
                               float best, float inverse_temperature) {
    int32_t n_blocks = (n_vocab + BLOCK - 1) / BLOCK;
    double total = 0.0;
    for (int32_t b = 0; b < n_blocks; b++) {
        if (evaluated[b]) continue;
        const float *x = logits + (int64_t)b * BLOCK;
        float mass = 0.0f;
        int32_t length = block_length(n_vocab, b);
        for (int32_t i = 0; i < length; i++) mass += exp_nonpositive((x[i] - best) * inverse_temperature);
        total += mass;
    }
    return total;
}

static void start(evaluation *e, const float *logits, int32_t n_vocab, float best, float temperature,
                  scratch *memory) {
    *e = (evaluation){logits, n_vocab, (n_vocab + BLOCK - 1) / BLOCK, best, 1.0f / temperature,
                      0.0, 0.0, 0.0f, 0, 0, memory};
    for (int32_t b = 0; b < e->n_blocks; b++) {
        memory->block_weight[b] = exp_nonpositive((memory->block_max[b] - best) * e->inverse_temperature);
        memory->evaluated[b] = 0;
    }
}

/* Evaluates every block whose best token weighs at least `threshold`, and recomputes the bounds. */
static void evaluate_blocks_above(evaluation *e, float threshold) {
    scratch *m = e->memory;
    double bound = 0.0;
    float unevaluated_max = 0.0f;
    for (int32_t b = 0; b < e->n_blocks; b++) {
        if (m->evaluated[b]) continue;
        float w = m->block_weight[b];
        int32_t length = block_length(e->n_vocab, b);
        if (w > 0.0f && w >= threshold) {
            double mass = evaluate_block(e->logits + (int64_t)b * BLOCK, m->weights + (int64_t)b * BLOCK, length,
                                         e->best, e->inverse_temperature);
            if (!e->mass_exact) e->evaluated_mass += mass;
            m->evaluated[b] = 1;
        } else {
            bound += (double)w * length;
            unevaluated_max = w > unevaluated_max ? w : unevaluated_max;
        }
    }
    e->unevaluated_bound = e->mass_exact ? 0.0 : bound;
    e->unevaluated_max = unevaluated_max;
}

/* Collects and sorts the evaluated tokens weighing at least `threshold` (and more than zero). */
static void gather_candidates(evaluation *e, float threshold) {
    scratch *m = e->memory;
    int32_t count = 0;
    for (int32_t b = 0; b < e->n_blocks; b++) {
        if (!m->evaluated[b] || m->block_weight[b] < threshold) continue;
        int32_t length = block_length(e->n_vocab, b);
        const float *w = m->weights + (int64_t)b * BLOCK;
        const float *x = e->logits + (int64_t)b * BLOCK;
        for (int32_t i = 0; i < length; i++) {
            m->candidates[count].weight = w[i];
            m->candidates[count].logit = x[i];
            m->candidates[count].id = b * BLOCK + i;
            count += w[i] >= threshold && w[i] > 0.0f;
        }
    }
    qsort(m->candidates, (size_t)count, sizeof(candidate), by_probability_then_id);
    e->n_candidates = count;
}

/* The shortest prefix of `sorted` whose mass reaches `target`, or -1 if the candidates fall short. */
static int32_t prefix_reaching(const candidate *sorted, int32_t count, double target) {
    double mass = 0.0;
    for (int32_t i = 0; i < count; i++) {
        mass += sorted[i].weight;
        if (mass >= target) return i + 1;
    }
    return -1;
}

/* Evaluated tokens by binary order of magnitude: bucket j holds weights in [2^-j, 2^(1-j)). Lighter
 * tokens are left out: they matter only when the cut falls below them, and then every token is looked at. */
#define N_BUCKETS 128
#define HISTOGRAM_FLOOR 1e-7f
typedef struct {
    double mass[N_BUCKETS];
    int32_t count[N_BUCKETS];
} histogram;

static inline int bucket_of(float weight) {
    uint32_t bits;
    memcpy(&bits, &weight, sizeof bits);
    int exponent = (int)(bits >> 23); /* weights are in [0, 1]: no sign bit */
    return exponent >= 127 ? 0 : (exponent == 0 ? N_BUCKETS - 1 : 127 - exponent);
}

static float bucket_floor(int j) { return j >= N_BUCKETS - 1 ? 0.0f : ldexpf(1.0f, -j); }

static void fill_histogram(const evaluation *e, histogram *h) {
    memset(h, 0, sizeof *h);
    const scratch *m = e->memory;
    for (int32_t b = 0; b < e->n_blocks; b++) {
        if (!m->evaluated[b]) continue;
        const float *w = m->weights + (int64_t)b * BLOCK;
        for (int32_t i = 0, length = block_length(e->n_vocab, b); i < length; i++) {
            if (w[i] < HISTOGRAM_FLOOR) continue;
            int j = bucket_of(w[i]);
            h->mass[j] += w[i];
            h->count[j]++;
        }
    }
}

/* The weight at or above which the kept set lies, as far as the evaluated tokens tell: the floor of the
 * bucket holding the k-th token, or the top-p cut against the evaluated mass, and never below min_p.
 * `decide` checks that no unevaluated token reaches it. */
static float candidate_floor(const evaluation *e, const histogram *h, int32_t top_k, float top_p, float min_p) {
    float floor = min_p;
    if (top_k > 0) {
        int32_t seen = 0;
        int j = 0;
        while (j < N_BUCKETS - 1 && (seen += h->count[j]) < top_k) j++;
        floor = bucket_floor(j);
    } else if (top_p < 1.0f) {
        double target = (double)top_p * e->evaluated_mass, mass = 0.0;
        int j = 0;
        while (j < N_BUCKETS - 1 && (mass += h->mass[j]) < target) j++;
        floor = bucket_floor(j);
    }
    return floor > min_p ? floor : min_p;
}

typedef enum { DECIDED, NEED_PRECISION } verdict;

/* Whether the sorted candidates (every token weighing at least `floor`) decide the kept set. */
static verdict decide(const evaluation *e, float floor, int32_t top_k, float top_p, float min_p, int32_t *keep) {
    const candidate *sorted = e->memory->candidates;
    int32_t count = e->n_candidates;
    if (floor > 0.0f && !(floor > e->unevaluated_max)) return NEED_PRECISION; /* a candidate may be missing */
    int32_t kept = count;
    if (top_k > 0) {
        if (top_k > count && floor > 0.0f) return NEED_PRECISION;
        kept = top_k < count ? top_k : count;
    }
    if (top_p < 1.0f) {
        double low = 0.0, high;
        if (top_k > 0) {
            for (int32_t i = 0; i < kept; i++) low += sorted[i].weight;
            high = low;
        } else {
            low = e->evaluated_mass;
            high = low + e->unevaluated_bound;
        }
        int32_t cut_low = prefix_reaching(sorted, kept, (double)top_p * low);
        int32_t cut_high = prefix_reaching(sorted, kept, (double)top_p * high);
        if (cut_low < 0) return NEED_PRECISION;
        /* the bound on the unevaluated mass leaves the cut open */
        if (cut_high != cut_low && e->unevaluated_bound > NEGLIGIBLE_REMAINDER * low) return NEED_PRECISION;
        kept = cut_low;
    }
    if (min_p > 0.0f) {
        int32_t i = 1; /* the best token (weight 1) always stays */
        while (i < kept && sorted[i].weight >= min_p) i++;
        kept = i;
    }
    *keep = kept;
    return DECIDED;
}

/* Makes the partition function exact: adds the mass of every unevaluated block, which stay unevaluated
 * (their tokens weigh at most unevaluated_max each) unless a candidate floor reaches them. */
static void make_mass_exact(evaluation *e) {
    e->evaluated_mass += unevaluated_mass(e->logits, e->n_vocab, e->memory->evaluated, e->best,
                                          e->inverse_temperature);
    e->unevaluated_bound = 0.0;
    e->mass_exact = 1;
}

/* The floor of the bucket holding the k-th heaviest block: at least k tokens weigh that much. */
static float kth_block_floor(const evaluation *e, int32_t k) {
    int32_t count[N_BUCKETS] = {0};
    for (int32_t b = 0; b < e->n_blocks; b++)
        if (e->memory->block_weight[b] > 0.0f) count[bucket_of(e->memory->block_weight[b])]++;
    int32_t seen = 0;
    for (int j = 0; j < N_BUCKETS - 1; j++)
        if ((seen += count[j]) >= k) return bucket_floor(j);
    return 0.0f;
}

/* With top_k, the kept set lies among the k heaviest tokens, all of which weigh at least the k-th
 * heaviest block: evaluating those blocks decides it, and top-p is relative to their mass. */
static int32_t kept_among_top_k(evaluation *e, int32_t top_k, float top_p, float min_p) {
    float floor = kth_block_floor(e, top_k);
    if (min_p > floor) floor = min_p;
    evaluate_blocks_above(e, floor);
    if (floor == 0.0f) e->unevaluated_max = 0.0f;
    gather_candidates(e, floor);
    int32_t keep = e->n_candidates;
    decide(e, floor, top_k, top_p, min_p, &keep);
    return keep;
}

/* Gathers candidates from the histogram's floor and decides; 0 if they cannot decide yet. */
static int32_t try_floor(evaluation *e, histogram *h, int32_t top_k, float top_p, float min_p) {
    fill_histogram(e, h);
    float floor = candidate_floor(e, h, top_k, top_p, min_p);
    gather_candidates(e, floor);
    int32_t keep = 0;
    return decide(e, floor, top_k, top_p, min_p, &keep) == DECIDED ? keep : 0;
}

/* Leaves the kept tokens in memory->candidates[0..returned), most probable first.
 * First only blocks near the best token are evaluated (within e^-7, then e^-14 of it): enough when the
 * distribution is peaked. Otherwise the partition function is made exact, and if the cut still lies
 * below the evaluated blocks, every token is evaluated. */
static int32_t kept_set(const float *logits, int32_t n_vocab, float best, float temperature, int32_t top_k,
                        float top_p, float min_p, scratch *memory) {
    evaluation e;
    histogram h;
    start(&e, logits, n_vocab, best, temperature, memory);
    if (top_k > 0) return kept_among_top_k(&e, top_k, top_p, min_p);
    int32_t keep = 0;
    for (float precision = 1e-3f; precision >= 1e-6f && keep == 0; precision *= 1e-3f) {
        evaluate_blocks_above(&e, precision);
        keep = try_floor(&e, &h, top_k, top_p, min_p);
    }
    if (keep == 0) {
        make_mass_exact(&e);
        keep = try_floor(&e, &h, top_k, top_p, min_p);
    }
    if (keep == 0) {
        evaluate_blocks_above(&e, 0.0f);
        e.unevaluated_max = 0.0f;
        keep = try_floor(&e, &h, top_k, top_p, min_p);
    }
    return keep ? keep : e.n_candidates;
}

/* splitmix64: the uniforms of one draw come from the caller's random bits, so a seed fixes the token. */
static double next_uniform(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int32_t draw_from(const candidate *kept, int32_t count, double uniform) {
    double total = 0.0;
    for (int32_t i = 0; i < count; i++) total += kept[i].weight;
    double target = uniform * total, mass = 0.0;
    for (int32_t i = 0; i < count; i++) {
        mass += kept[i].weight;
        if (target < mass) return kept[i].id;
    }
    return count > 0 ? kept[count - 1].id : -1;
}

static int32_t draw_evaluated(const evaluation *e, double target) {
    const scratch *m = e->memory;
    int32_t last = -1;
    for (int32_t b = 0; b < e->n_blocks; b++) {
        if (!m->evaluated[b]) continue;
        const float *w = m->weights + (int64_t)b * BLOCK;
        for (int32_t i = 0, length = block_length(e->n_vocab, b); i < length; i++) {
            if (w[i] <= 0.0f) continue;
            last = b * BLOCK + i;
            if (target < w[i]) return last;
            target -= w[i];
        }
    }
    return last; /* rounding at the very end of the range */
}

/* Plain temperature sampling over the whole vocabulary, by rejection: an evaluated token is proposed with
 * its exact weight, an unevaluated one with its block's maximum as the bound and then accepted with
 * probability weight / bound, so every token is drawn with probability proportional to its weight. */
static int32_t draw_whole_vocabulary(const float *logits, int32_t n_vocab, float best, float temperature,
                                     scratch *memory, uint64_t *state) {
    evaluation e;
    start(&e, logits, n_vocab, best, temperature, memory);
    evaluate_blocks_above(&e, 1e-3f);
    for (int attempt = 0; attempt < 1000000; attempt++) {
        double target = next_uniform(state) * (e.evaluated_mass + e.unevaluated_bound);
        if (target < e.evaluated_mass) return draw_evaluated(&e, target);
        target -= e.evaluated_mass;
        int32_t b = 0;
        for (; b < e.n_blocks; b++) {
            if (memory->evaluated[b]) continue;
            double bound = (double)memory->block_weight[b] * block_length(n_vocab, b);
            if (target < bound) break;
            target -= bound;
        }
        if (b == e.n_blocks) continue; /* rounding at the very end of the range: draw again */
        int32_t i = b * BLOCK + (int32_t)(next_uniform(state) * block_length(n_vocab, b));
        float weight = exp_nonpositive((logits[i] - best) * e.inverse_temperature);
        if (next_uniform(state) * memory->block_weight[b] < weight) return i;
    }
    return first_argmax(logits, n_vocab, memory->block_max, best); /* unreachable in practice */
}

/* Draws one token: greedy when temperature is 0. Returns -1 when every logit is -inf. */
int32_t edge_sample(const float *logits, int32_t n_vocab, float temperature, int32_t top_k, float top_p,
                    float min_p, uint64_t random_bits, scratch *memory) {
    float best = block_maxima(logits, n_vocab, memory->block_max);
    if (best <= -FLT_MAX) return -1;
    if (temperature <= 0.0f) return first_argmax(logits, n_vocab, memory->block_max, best);
    uint64_t state = random_bits;
    if (top_k == 0 && top_p >= 1.0f && min_p <= 0.0f)
        return draw_whole_vocabulary(logits, n_vocab, best, temperature, memory, &state);
    int32_t keep = kept_set(logits, n_vocab, best, temperature, top_k, top_p, min_p, memory);
    return draw_from(memory->candidates, keep, next_uniform(&state));
}

/* The kept set with its sampling probabilities (tests compare it with a reference implementation). */
int32_t edge_kept_set(const float *logits, int32_t n_vocab, float temperature, int32_t top_k, float top_p,
                      float min_p, scratch *memory, int32_t *ids, double *probabilities) {
    float best = block_maxima(logits, n_vocab, memory->block_max);
    if (best <= -FLT_MAX) return 0;
    int32_t keep = kept_set(logits, n_vocab, best, temperature, top_k, top_p, min_p, memory);
    double total = 0.0;
    for (int32_t i = 0; i < keep; i++) total += memory->candidates[i].weight;
    for (int32_t i = 0; i < keep; i++) {
        ids[i] = memory->candidates[i].id;
        probabilities[i] = memory->candidates[i].weight / total;
    }
    return keep;
}

VECTORIZED
static double total_mass(const float *restrict logits, int32_t n_vocab, float best) {
    double total = 0.0;
    for (int32_t start = 0; start < n_vocab; start += BLOCK) {
        int32_t length = block_length(n_vocab, start / BLOCK);
        float mass = 0.0f;
        for (int32_t i = 0; i < length; i++) mass += exp_nonpositive(logits[start + i] - best);
        total += mass;
    }
    return total;
}

/* log(sum(exp(logits))), for log-probabilities; -FLT_MAX when every logit is -inf. */
double edge_log_normalizer(const float *logits, int32_t n_vocab, scratch *memory) {
    float best = block_maxima(logits, n_vocab, memory->block_max);
    if (best <= -FLT_MAX) return -FLT_MAX;
    return (double)best + log(total_mass(logits, n_vocab, best));
}

size_t edge_scratch_bytes(int32_t n_vocab) {
    size_t n_blocks = ((size_t)n_vocab + BLOCK - 1) / BLOCK;
    return sizeof(scratch) + (size_t)n_vocab * (sizeof(candidate) + sizeof(float)) +
           n_blocks * (2 * sizeof(float) + 1) + 64;
}

/* Lays a scratch out inside caller-owned memory of edge_scratch_bytes(n_vocab) bytes. */
scratch *edge_scratch_init(void *memory, int32_t n_vocab) {
    size_t n_blocks = ((size_t)n_vocab + BLOCK - 1) / BLOCK;
    char *cursor = (char *)(((uintptr_t)memory + 63) & ~(uintptr_t)63);
    scratch *s = (scratch *)cursor;
    cursor += sizeof(scratch);
    s->candidates = (candidate *)cursor;
    cursor += (size_t)n_vocab * sizeof(candidate);
    s->weights = (float *)cursor;
    cursor += (size_t)n_vocab * sizeof(float);
    s->block_max = (float *)cursor;
    cursor += n_blocks * sizeof(float);
    s->block_weight = (float *)cursor;
    cursor += n_blocks * sizeof(float);
    s->evaluated = (uint8_t *)cursor;
    return s;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_nucleus",
                                    .m_doc = "Sampling kernel, used through ctypes.", .m_size = -1};

PyMODINIT_FUNC PyInit__nucleus(void) { return PyModule_Create(&module); }
