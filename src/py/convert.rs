//! Conversions between Python objects and core types.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::envs::{Config, ConfigValue};
use crate::errors::CoreError;
use crate::safety::config::Value;

/// Reads actions of any memory layout (float32/float64 arrays, nested lists, scalars) into a
/// row-major `f64` vector, checking the shape against `expected` (with `alt` as the one other
/// accepted shape, e.g. `(n,)` for one-dimensional actions).
pub fn actions(
    obj: &Bound<'_, PyAny>,
    expected: &[usize],
    alt: Option<&[usize]>,
) -> PyResult<Vec<f64>> {
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        let dtype = arr.dtype();
        let shape = arr.shape().to_vec();
        check_shape(&shape, expected, alt)?;
        if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
            return Ok(a.readonly().as_array().iter().copied().collect());
        }
        if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
            return Ok(a
                .readonly()
                .as_array()
                .iter()
                .map(|&x| f64::from(x))
                .collect());
        }
        let name = dtype
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(CoreError::action(format!(
            "dtype {name} is not supported: pass float32 or float64 actions"
        ))
        .into());
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() || is_number(obj) {
        let np = obj.py().import("numpy")?;
        let arr = np
            .call_method1("asarray", (obj, np.getattr("float64")?))
            .map_err(|e| CoreError::action(format!("could not read the action as numbers: {e}")))?;
        return actions(&arr, expected, alt);
    }
    Err(CoreError::action(format!(
        "must be a float array or a list of numbers, got {}",
        obj.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    ))
    .into())
}

fn is_number(obj: &Bound<'_, PyAny>) -> bool {
    (obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>())
        && !obj.is_instance_of::<PyBool>()
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
        let key: String = k.extract()?;
        let value = if v.is_instance_of::<PyBool>() {
            ConfigValue::Bool(v.extract()?)
        } else if is_number(&v) {
            ConfigValue::Number(v.extract()?)
        } else if let Ok(list) = v.extract::<Vec<f64>>() {
            ConfigValue::List(list)
        } else {
            let ty = v
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(CoreError::config(
                &key,
                format!("must be a bool, a number or a list of numbers, got {ty}"),
            )
            .into());
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Converts a Python object (dict, list, str, number, bool, None) into a configuration value tree.
pub fn value_tree(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if is_number(obj) {
        return Ok(Value::Num(obj.extract()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s.to_str()?.to_string(),
                Err(_) => {
                    return Err(
                        CoreError::config(path, format!("keys must be strings, got {k}")).into(),
                    )
                }
            };
            let child = value_tree(&v, &format!("{path}.{key}"))?;
            out.push((key, child));
        }
        return Ok(Value::Map(out));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            out.push(value_tree(&item?, &format!("{path}[{i}]"))?);
        }
        return Ok(Value::List(out));
    }
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(CoreError::config(path, format!("unsupported value of type {ty}")).into())
}
