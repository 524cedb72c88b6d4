/* Arithmetic: the operators + - * / ^ and unary minus (with broadcasting and
 * a number on either side), their named forms (bn.add, t:mul, ...), and the
 * elementwise functions exp, log, sqrt, abs, relu, tanh, sigmoid, clamp. */
#include <math.h>

#include "autograd.h"
#include "bindings/luatensor.h"
#include "ops.h"

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW };

static const char *const op_names[] = {"add", "sub", "mul", "div", "pow"};

/* a / s as a true division (a * (1/s) would round differently). */
static bn_tensor *div_scalar(bn_tensor *a, float s)
{
    bn_tensor *st = bn_tensor_scalar(s);
    if (!st) return NULL;
    bn_tensor *r = bn_div(a, st);
    bn_tensor_release(st);
    return r;
}

/* s ^ a = exp(a * ln s) for s > 0 (the only case with a real answer for
 * every a). */
static bn_tensor *rpow_scalar(bn_tensor *a, double s)
{
    bn_tensor *m = bn_mul_scalar(a, (float)log(s));
    if (!m) return NULL;
    bn_tensor *r = bn_exp(m);
    bn_tensor_release(m);
    return r;
}

static bn_tensor *tensor_tensor(int op, bn_tensor *a, bn_tensor *b)
{
    switch (op) {
    case OP_ADD: return bn_add(a, b);
    case OP_SUB: return bn_sub(a, b);
    case OP_MUL: return bn_mul(a, b);
    case OP_DIV: return bn_div(a, b);
    }
    return NULL;
}

static bn_tensor *tensor_number(int op, bn_tensor *a, double s)
{
    switch (op) {
    case OP_ADD: return bn_add_scalar(a, (float)s);
    case OP_SUB: return bn_add_scalar(a, (float)-s);
    case OP_MUL: return bn_mul_scalar(a, (float)s);
    case OP_DIV: return div_scalar(a, (float)s);
    case OP_POW: return bn_pow_scalar(a, (float)s);
    }
    return NULL;
}

static bn_tensor *number_tensor(int op, double s, bn_tensor *b)
{
    switch (op) {
    case OP_ADD: return bn_add_scalar(b, (float)s);
    case OP_SUB: return bn_rsub_scalar(b, (float)s);
    case OP_MUL: return bn_mul_scalar(b, (float)s);
    case OP_DIV: return bn_rdiv_scalar(b, (float)s);
    case OP_POW: return rpow_scalar(b, s);
    }
    return NULL;
}

static int binary(lua_State *L, int op)
{
    const char *fn = op_names[op];
    bool an = lua_type(L, 1) == LUA_TNUMBER, bnum = lua_type(L, 2) == LUA_TNUMBER;
    bn_tensor *a = an ? NULL : lt_test(L, 1), *b = bnum ? NULL : lt_test(L, 2);
    /* Arguments in order, so the message points at the first bad one. */
    if (!an && !a) {
        if (luaL_testudata(L, 1, LT_TENSOR_MT)) lt_check(L, 1, fn, NULL); /* closed */
        lt_argerror(L, fn, 1, NULL, "a tensor or a number");
    }
    if (!bnum && !b) {
        if (luaL_testudata(L, 2, LT_TENSOR_MT)) lt_check(L, 2, fn, NULL);
        lt_argerror(L, fn, 2, NULL, "a tensor or a number");
    }
    if (an && bnum) lt_error(L, fn, "expected at least one tensor, got two numbers");
    if (op == OP_POW && a && b)
        lt_error(L, fn, "tensor ^ tensor is not supported; use bn.exp(b * bn.log(a)) for a > 0");
    if (op == OP_POW && an) {
        double s = lua_tonumber(L, 1);
        if (!(s > 0) || isinf(s))
            lt_error(L, fn, "number ^ tensor expected a finite base > 0, got %g", s);
    }
    lt_box *r = lt_newbox(L);
    if (a && b) LT_RUN(L, r, tensor_tensor(op, a, b));
    else if (a) LT_RUN(L, r, tensor_number(op, a, lua_tonumber(L, 2)));
    else LT_RUN(L, r, number_tensor(op, lua_tonumber(L, 1), b));
    return lt_done(L, r, fn);
}

static int l_add(lua_State *L) { return binary(L, OP_ADD); }
static int l_sub(lua_State *L) { return binary(L, OP_SUB); }
static int l_mul(lua_State *L) { return binary(L, OP_MUL); }
static int l_div(lua_State *L) { return binary(L, OP_DIV); }
static int l_pow(lua_State *L) { return binary(L, OP_POW); }

typedef bn_tensor *(*unary_fn)(bn_tensor *);

static int unary(lua_State *L, const char *fn, unary_fn f)
{
    bn_tensor *t = lt_check(L, 1, fn, "input");
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, f(t));
    return lt_done(L, b, fn);
}

static int l_neg(lua_State *L) { return unary(L, "neg", bn_neg); }
static int l_exp(lua_State *L) { return unary(L, "exp", bn_exp); }
static int l_log(lua_State *L) { return unary(L, "log", bn_log); }
static int l_sqrt(lua_State *L) { return unary(L, "sqrt", bn_sqrt); }
static int l_abs(lua_State *L) { return unary(L, "abs", bn_abs); }
static int l_relu(lua_State *L) { return unary(L, "relu", bn_relu); }
static int l_tanh(lua_State *L) { return unary(L, "tanh", bn_tanh); }
static int l_sigmoid(lua_State *L) { return unary(L, "sigmoid", bn_sigmoid); }

/* __unm is called with the operand twice; only the first matters. */
static int m_unm(lua_State *L)
{
    lua_settop(L, 1);
    return l_neg(L);
}

static int l_clamp(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "clamp", "input");
    if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3))
        lt_error(L, "clamp", "expected at least one of min (argument #2) and max (argument #3), got neither");
    double lo = lt_optnum(L, 2, "clamp", "min", false, -INFINITY);
    double hi = lt_optnum(L, 3, "clamp", "max", false, INFINITY);
    if (lo > hi) lt_error(L, "clamp", "expected min <= max, got min %g and max %g", lo, hi);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_clamp(t, (float)lo, (float)hi));
    return lt_done(L, b, "clamp");
}

void lt_open_arith(lua_State *L, int mod, int methods)
{
    static const luaL_Reg both[] = {
        {"add", l_add},   {"sub", l_sub},   {"mul", l_mul},   {"div", l_div},         {"pow", l_pow},
        {"neg", l_neg},   {"exp", l_exp},   {"log", l_log},   {"sqrt", l_sqrt},       {"abs", l_abs},
        {"relu", l_relu}, {"tanh", l_tanh}, {"clamp", l_clamp}, {"sigmoid", l_sigmoid}, {NULL, NULL},
    };
    for (const luaL_Reg *r = both; r->name; r++) lt_register(L, mod, methods, r->name, r->func);

    static const luaL_Reg meta[] = {
        {"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul}, {"__div", l_div},
        {"__pow", l_pow}, {"__unm", m_unm}, {NULL, NULL},
    };
    luaL_getmetatable(L, LT_TENSOR_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
}
