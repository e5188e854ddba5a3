//! Conversions between Python objects and core types.
//!
//! Actions: any array of real numbers (float16/32/64, signed or unsigned integers, any memory
//! layout or byte order, read-only or not), a nested list or tuple of real numbers, or an object
//! with `__array__` (a tensor on the CPU). bool, complex, object, string and date dtypes are refused:
//! each is far more often a bug upstream than an action. Integers and float16 convert exactly to
//! float64; wider values round to the nearest float64 and are clipped like any out-of-range action.

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType,
};

use crate::envs::{Config, ConfigValue};
use crate::errors::CoreError;
use crate::safety::config::Value;
use crate::telemetry::quality::Refusal;

/// Deepest nesting of a configuration value tree (a constraint config needs four levels).
const MAX_DEPTH: usize = 32;

/// Most values in one configuration tree: far beyond any real constraint set, and a bound on the
/// work a YAML file can ask for with aliases (which expand exponentially when walked).
const MAX_VALUES: usize = 100_000;

/// Arrays up to this many elements are copied into a NumPy-owned buffer; longer ones hand over
/// their Rust buffer. A copy of a few KB costs less than the owner object a handed-over buffer
/// needs (one Python object per array instead of two, and a single env returns two each step).
const COPY_UP_TO: usize = 1024;

/// `v` as a 1-D NumPy array (see [`COPY_UP_TO`]).
pub fn array1<T: numpy::Element + Copy>(py: Python<'_>, v: Vec<T>) -> Bound<'_, PyArray1<T>> {
    if v.len() <= COPY_UP_TO {
        PyArray1::from_slice(py, &v)
    } else {
        v.into_pyarray(py)
    }
}

/// `v` (row-major, `rows * cols` elements) as a 2-D NumPy array (see [`COPY_UP_TO`]).
pub fn array2<T: numpy::Element + Copy>(
    py: Python<'_>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<T>>> {
    if v.len() != rows * cols {
        return Err(CoreError::State(format!(
            "{} values do not fill a {rows} x {cols} array",
            v.len()
        ))
        .into());
    }
    if v.len() <= COPY_UP_TO {
        // SAFETY: a new, C-contiguous array that nothing else references yet; every element is
        // written before it is returned.
        unsafe {
            let a = PyArray2::<T>::new(py, [rows, cols], false);
            a.as_slice_mut()
                .map_err(|e| CoreError::State(e.to_string()))?
                .copy_from_slice(&v);
            Ok(a)
        }
    } else {
        Ok(ndarray::Array2::from_shape_vec((rows, cols), v)
            .map_err(|e| CoreError::State(e.to_string()))?
            .into_pyarray(py))
    }
}

/// An action refused while being read, with the reason the data-quality counters use.
pub struct Refused {
    /// Why (shape, or not real numbers).
    pub why: Refusal,
    /// The exception to raise.
    pub err: PyErr,
}

impl From<Refused> for PyErr {
    fn from(r: Refused) -> PyErr {
        r.err
    }
}

fn not_numbers(e: impl Into<PyErr>) -> Refused {
    Refused {
        why: Refusal::Dtype,
        err: e.into(),
    }
}

/// Reads actions (see the module documentation) into a row-major `f64` vector, checking the shape
/// against `expected` (with `alt` as the one other accepted shape, e.g. `(n,)` for
/// one-dimensional actions).
pub fn actions(
    obj: &Bound<'_, PyAny>,
    expected: &[usize],
    alt: Option<&[usize]>,
) -> Result<Vec<f64>, Refused> {
    if obj.cast::<PyUntypedArray>().is_ok() {
        return array_actions(obj, expected, alt, false);
    }
    let nested = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    if nested && holds_masked_elements(obj, 0) {
        return Err(not_numbers(CoreError::action(
            "the list holds a masked array with masked elements, which an action cannot skip: \
             pass a.filled(value) or a plain array",
        )));
    }
    if nested || is_number(obj) || obj.hasattr("__array__").unwrap_or(false) {
        let np = obj.py().import("numpy").map_err(not_numbers)?;
        let arr = np.call_method1("asarray", (obj,)).map_err(|e| {
            not_numbers(readable(
                obj.py(),
                e,
                "could not read the action as an array of numbers",
            ))
        })?;
        return array_actions(&arr, expected, alt, nested);
    }
    Err(not_numbers(CoreError::action(format!(
        "must be an array or a (nested) list of real numbers, got {}",
        type_name(obj)
    ))))
}

fn array_actions(
    obj: &Bound<'_, PyAny>,
    expected: &[usize],
    alt: Option<&[usize]>,
    from_list: bool,
) -> Result<Vec<f64>, Refused> {
    let arr = obj
        .cast::<PyUntypedArray>()
        .map_err(|e| not_numbers(PyErr::from(e)))?;
    if has_masked_elements(obj) {
        return Err(not_numbers(CoreError::action(
            "the masked array has masked elements, which an action cannot skip: pass \
             a.filled(value) or a plain array",
        )));
    }
    let dtype = arr.dtype();
    match dtype.kind() {
        b'f' | b'i' | b'u' => {}
        _ => {
            let name = dtype
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "?".into());
            let hint = if from_list {
                " (the list holds something other than real numbers: None, bools, strings, \
                 complex numbers, or integers beyond 64 bits)"
            } else {
                ""
            };
            return Err(not_numbers(CoreError::action(format!(
                "dtype {name} is not supported{hint}: pass real numbers (float or integer arrays, \
                 or nested lists of numbers)"
            ))));
        }
    }
    check_shape(arr.shape(), expected, alt).map_err(|e| Refused {
        why: Refusal::Shape,
        err: e.into(),
    })?;
    if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        return Ok(elements(a, |x| x));
    }
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
        return Ok(elements(a, f64::from));
    }
    // float16, long double, integers, a foreign byte order: numpy converts to native float64.
    let converted = obj.call_method1("astype", ("float64",)).map_err(|e| {
        not_numbers(readable(
            obj.py(),
            e,
            "could not convert the action to float64",
        ))
    })?;
    let converted = converted
        .cast::<PyArrayDyn<f64>>()
        .map_err(|e| not_numbers(PyErr::from(e)))?;
    Ok(elements(converted, |x| x))
}

/// The array's elements in logical (row-major) order, converted by `f`: C-contiguous memory as one
/// slice (a plain loop), other layouts (Fortran order, strided views) element by element.
fn elements<T: numpy::Element + Copy>(
    a: &Bound<'_, PyArrayDyn<T>>,
    f: impl Fn(T) -> f64,
) -> Vec<f64> {
    // SAFETY: the views live only inside this function, which holds the GIL and runs no Python
    // code, so no Python code can write the array meanwhile, and this crate never keeps a
    // writable view of an array it was handed. (This skips the numpy crate's borrow tracking, a
    // shared-table lookup and update: ~480 instructions per call, ~3% of a single env's step.)
    unsafe {
        if a.is_c_contiguous() {
            if let Ok(s) = a.as_slice() {
                return s.iter().map(|&x| f(x)).collect();
            }
        }
        a.as_array().iter().map(|&x| f(x)).collect()
    }
}

/// An ordinary exception raised while reading user input becomes an [`CoreError::InvalidAction`];
/// `KeyboardInterrupt`, `SystemExit` and the like pass through untouched.
fn readable(py: Python<'_>, e: PyErr, what: &str) -> PyErr {
    if e.is_instance_of::<PyException>(py) {
        CoreError::action(format!("{what}: {}", e.value(py))).into()
    } else {
        e
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// numpy's `ndarray` and `ma.MaskedArray` types and `ma.is_masked`, looked up once.
static MASKED_API: PyOnceLock<(Py<PyType>, Py<PyType>, Py<PyAny>)> = PyOnceLock::new();

/// A numpy masked array with at least one masked element (checked only for ndarray subclasses: a
/// plain array costs one compare). A masked array with nothing masked is an ordinary action.
fn has_masked_elements(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    let api = MASKED_API.get_or_try_init(py, || -> PyResult<_> {
        let ma = py.import("numpy.ma")?;
        Ok((
            py.import("numpy")?
                .getattr("ndarray")?
                .cast_into::<PyType>()?
                .unbind(),
            ma.getattr("MaskedArray")?.cast_into::<PyType>()?.unbind(),
            ma.getattr("is_masked")?.unbind(),
        ))
    });
    let Ok((plain, masked, is_masked)) = api else {
        return false;
    };
    !obj.get_type().is(plain.bind(py))
        && obj.is_instance(masked.bind(py)).unwrap_or(false)
        && is_masked
            .bind(py)
            .call1((obj,))
            .and_then(|m| m.is_truthy())
            .unwrap_or(true)
}

/// A (nested) list or tuple holding a masked array with masked elements, which `numpy.asarray`
/// would read as if nothing were masked. Plain numbers cost one type check each.
fn holds_masked_elements(seq: &Bound<'_, PyAny>, depth: usize) -> bool {
    let Ok(items) = seq.try_iter() else {
        return false;
    };
    items.flatten().any(|item| {
        if item.is_instance_of::<PyFloat>() || item.is_instance_of::<PyInt>() {
            false
        } else if item.is_instance_of::<PyList>() || item.is_instance_of::<PyTuple>() {
            depth < 4 && holds_masked_elements(&item, depth + 1)
        } else {
            item.cast::<PyUntypedArray>().is_ok() && has_masked_elements(&item)
        }
    })
}

static NUMPY_REAL: PyOnceLock<(Py<PyType>, Py<PyType>)> = PyOnceLock::new();

/// A Python int or float, or a numpy integer or floating scalar; never a bool.
fn is_number(obj: &Bound<'_, PyAny>) -> bool {
    if obj.is_instance_of::<PyBool>() {
        return false;
    }
    if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>() {
        return true;
    }
    let py = obj.py();
    let types = NUMPY_REAL.get_or_try_init(py, || -> PyResult<_> {
        let np = py.import("numpy")?;
        Ok((
            np.getattr("integer")?.cast_into::<PyType>()?.unbind(),
            np.getattr("floating")?.cast_into::<PyType>()?.unbind(),
        ))
    });
    match types {
        Ok((int, float)) => {
            obj.is_instance(int.bind(py)).unwrap_or(false)
                || obj.is_instance(float.bind(py)).unwrap_or(false)
        }
        Err(_) => false,
    }
}

/// A count argument (``num_envs``, ``num_threads``) as `usize`: a Python int or numpy integer,
/// never a bool, a float or a string. Only types are settled here: the batch checks the value
/// (at least 1, at most its limit). A negative integer is refused here (no `usize` holds it), an
/// integer beyond `usize` with the batch's limit, `max`, so that it reads as the batch's message.
pub fn count(obj: &Bound<'_, PyAny>, field: &str, what: &str, max: usize) -> PyResult<usize> {
    let integer =
        !obj.is_instance_of::<PyBool>() && !obj.is_instance_of::<PyFloat>() && is_number(obj);
    let refuse = || CoreError::config(field, format!("must be {what}, got {}", repr(obj)));
    if !integer {
        return Err(refuse().into());
    }
    match obj.extract::<i128>() {
        Ok(v) if v < 0 => Err(refuse().into()),
        Ok(v) => usize::try_from(v).map_err(|_| {
            CoreError::config(field, format!("must be at most {max}, got {v}")).into()
        }),
        Err(_) => Err(CoreError::config(
            field,
            format!("must be at most {max}, got {}", repr(obj)),
        )
        .into()),
    }
}

/// ``reset(seed=...)`` of a batch of `n`: ``None``; a non-negative integer `s` (env `i` gets
/// `s + i`); or a sequence (list, tuple, 1-D array) of non-negative integers or ``None``, one per
/// env (the batch checks the count). Integers are taken modulo 2**64, as NumPy's seeding does.
pub fn seeds(obj: &Bound<'_, PyAny>, n: usize) -> PyResult<Option<Vec<Option<u64>>>> {
    let field = "seed";
    if obj.is_none() {
        return Ok(None);
    }
    // Through a Python int: a numpy integer's own `%` would not take 2**64.
    let wrap = |v: &Bound<'_, PyAny>| -> PyResult<u64> {
        v.call_method0("__index__")?
            .rem(1u128 << 64)?
            .extract::<u64>()
    };
    if is_integer(obj) {
        if obj.lt(0)? {
            return Err(CoreError::config(
                field,
                format!("must be non-negative, got {}", repr(obj)),
            )
            .into());
        }
        let base = wrap(obj)?;
        return Ok(Some(
            (0..n as u64).map(|i| Some(base.wrapping_add(i))).collect(),
        ));
    }
    let is_array = obj.hasattr("ndim")? && obj.hasattr("dtype")?;
    let sequence = obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
        || (is_array && obj.getattr("ndim")?.extract::<usize>()? == 1);
    if !sequence {
        return Err(CoreError::config(
            field,
            format!(
                "must be a non-negative integer, a list of them (one per env) or None, got {}",
                repr(obj)
            ),
        )
        .into());
    }
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        let item = item?;
        if item.is_none() {
            out.push(None);
        } else if is_integer(&item) && !item.lt(0)? {
            out.push(Some(wrap(&item)?));
        } else {
            return Err(CoreError::config(
                field,
                format!(
                    "each seed must be a non-negative integer or None, got {}",
                    repr(&item)
                ),
            )
            .into());
        }
    }
    Ok(Some(out))
}

/// ``reset(options={"reset_mask": mask})`` of a batch of `n`: a numpy bool array of shape
/// ``(n,)`` selecting at least one env.
pub fn reset_mask(obj: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<bool>> {
    let bad = |why: String| -> PyErr { CoreError::config("reset_mask", why).into() };
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        return Err(bad(format!(
            "must be a numpy array, got {}",
            type_name(obj)
        )));
    };
    if arr.shape() != [n] {
        return Err(bad(format!(
            "must have shape ({n},), got {}",
            fmt_shape(arr.shape())
        )));
    }
    let Ok(mask) = arr.cast::<PyArray1<bool>>() else {
        let dtype = arr.dtype().str().map(|s| s.to_string());
        return Err(bad(format!(
            "must have dtype bool, got {}",
            dtype.unwrap_or_else(|_| "?".into())
        )));
    };
    let mask = mask.readonly().as_array().to_vec();
    if !mask.contains(&true) {
        return Err(bad("must select at least one env".into()));
    }
    Ok(mask)
}

/// A Python int or numpy integer; never a bool.
fn is_integer(obj: &Bound<'_, PyAny>) -> bool {
    !obj.is_instance_of::<PyBool>() && !obj.is_instance_of::<PyFloat>() && is_number(obj)
}

/// `repr(obj)`, or its type name where `repr` fails.
fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map_or_else(|_| type_name(obj), |r| r.to_string())
}

/// A real number as `f64`; an integer too large for a float is a configuration error.
fn number(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<f64> {
    obj.extract::<f64>().map_err(|e| {
        CoreError::config(
            field,
            format!("not representable as a float: {}", e.value(obj.py())),
        )
        .into()
    })
}

/// A string as UTF-8; lone surrogates are a configuration error.
fn text(s: &Bound<'_, PyString>, field: &str) -> PyResult<String> {
    s.to_str().map(str::to_string).map_err(|_| {
        CoreError::config(
            field,
            "must be valid Unicode (lone surrogates cannot be encoded)",
        )
        .into()
    })
}

fn check_shape(
    shape: &[usize],
    expected: &[usize],
    alt: Option<&[usize]>,
) -> Result<(), CoreError> {
    if shape == expected || alt == Some(shape) {
        return Ok(());
    }
    Err(CoreError::action(format!(
        "expected shape {}, got {}",
        fmt_shape(expected),
        fmt_shape(shape)
    )))
}

fn fmt_shape(s: &[usize]) -> String {
    match s {
        [x] => format!("({x},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Converts `make(id, **kwargs)` options into the core's typed config.
pub fn config(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut out = Config::new();
    let Some(kwargs) = kwargs else { return Ok(out) };
    for (k, v) in kwargs.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => text(s, "options")?,
            Err(_) => {
                return Err(CoreError::config("options", "option names must be strings").into())
            }
        };
        let value = if v.is_instance_of::<PyBool>() {
            ConfigValue::Bool(v.extract()?)
        } else if is_number(&v) {
            ConfigValue::Number(number(&v, &key)?)
        } else if let Some(list) = number_list(&v, &key)? {
            ConfigValue::List(list)
        } else {
            return Err(CoreError::config(
                &key,
                format!(
                    "must be a bool, a number or a list of numbers, got {}",
                    type_name(&v)
                ),
            )
            .into());
        };
        out.push((key, value));
    }
    Ok(out)
}

/// A sequence of real numbers (`None`: not a sequence): a list, tuple, range, 1-D array, pandas
/// Series, ... whose elements convert to float (numbers, 0-d arrays, tensors, fractions).
/// Strings and bytes are not sequences of numbers here, and a bool or string element is
/// refused, naming its index: `setpoints=b"ab"` or `[True]` is a mistake, not `[97.0, 98.0]` or
/// `[1.0]`.
fn number_list(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Option<Vec<f64>>> {
    let text = v.is_instance_of::<PyString>()
        || v.is_instance_of::<PyBytes>()
        || v.is_instance_of::<PyByteArray>();
    // The C API's sequence check (any `__getitem__` type but a dict: arrays, Series and tensors
    // too, which `collections.abc.Sequence` does not name).
    // SAFETY: `v` is a live object and the GIL is held; the call only reads its type's slots.
    let sequence = unsafe { pyo3::ffi::PySequence_Check(v.as_ptr()) } == 1;
    if text || !sequence {
        return Ok(None);
    }
    if let Ok(arr) = v.cast::<PyUntypedArray>() {
        if arr.ndim() != 1 {
            return Ok(None);
        }
    }
    let mut out = Vec::new();
    for (i, item) in v.try_iter()?.enumerate() {
        let item = item?;
        let refused = item.is_instance_of::<PyString>()
            || item.is_instance_of::<PyBytes>()
            || type_name(&item) == "bool";
        let message = match item.extract::<f64>() {
            _ if refused => format!("element {i} must be a number, got {}", type_name(&item)),
            Ok(x) => {
                out.push(x);
                continue;
            }
            Err(e) => format!(
                "element {i} must be a real number, got {} ({})",
                type_name(&item),
                e.value(v.py())
            ),
        };
        return Err(CoreError::config(key, message).into());
    }
    Ok(Some(out))
}

/// Converts a Python object (dict, list, str, number, bool, None) into a configuration value tree,
/// at most [`MAX_DEPTH`] levels deep and [`MAX_VALUES`] values large (a recursive or aliased
/// structure is refused, never walked without end).
pub fn value_tree(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    let mut budget = MAX_VALUES;
    tree(obj, path, 0, &mut budget)
}

fn tree(obj: &Bound<'_, PyAny>, path: &str, depth: usize, budget: &mut usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(
            CoreError::config(path, format!("nested more than {MAX_DEPTH} levels deep")).into(),
        );
    }
    if *budget == 0 {
        return Err(CoreError::config(
            path,
            format!("the configuration holds more than {MAX_VALUES} values"),
        )
        .into());
    }
    *budget -= 1;
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if is_number(obj) {
        return Ok(Value::Num(number(obj, path)?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(text(s, path)?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len().min(*budget));
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => text(s, path)?,
                Err(_) => {
                    return Err(CoreError::config(
                        path,
                        format!("keys must be strings, got {}", type_name(&k)),
                    )
                    .into())
                }
            };
            let child = tree(&v, &format!("{path}.{key}"), depth + 1, budget)?;
            out.push((key, child));
        }
        return Ok(Value::Map(out));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            out.push(tree(&item?, &format!("{path}[{i}]"), depth + 1, budget)?);
        }
        return Ok(Value::List(out));
    }
    Err(CoreError::config(
        path,
        format!("unsupported value of type {}", type_name(obj)),
    )
    .into())
}
