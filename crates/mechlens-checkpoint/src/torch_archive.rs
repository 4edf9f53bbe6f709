//! PyTorch `torch.save` archives (`pytorch_model.bin`, `.pt`, `.pth`) read without Python:
//! a zip holding `data.pkl` (a pickle) and one raw file per tensor storage.
//!
//! The pickle is run by a small stack machine that knows only what a saved state dict uses:
//! containers, numbers, strings, `collections.OrderedDict`, and `torch._utils`'
//! `_rebuild_tensor_v2` / `_rebuild_parameter` over typed storages. Any other global (a
//! pickled module or custom class) is an error naming it, never code that runs. libtorch's
//! own reader (`torch::jit::_load_parameters`) fails on `OrderedDict`, which is what
//! `torch.save(model.state_dict())` writes, hence this reader.

use std::collections::HashMap;
use std::path::Path;

#[cfg(doc)]
use mechlens_core::Error;
use mechlens_core::Result;
use tch::{Kind, Tensor};

use crate::zip_file::ZipFile;

/// A pickled value; tensors stay descriptions until the whole pickle is read.
#[derive(Clone, Debug)]
// Scalars keep their values for error messages.
#[allow(dead_code)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    /// A persistent id's storage: its file key and element kind.
    Storage(String, Kind),
    Tensor(TensorRef),
}

#[derive(Clone, Debug)]
struct TensorRef {
    key: String,
    kind: Kind,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

/// The named tensors of a `torch.save` archive holding a dict (or `OrderedDict`) of tensors;
/// entries that are not tensors (ints, strings, nested metadata) are skipped.
///
/// # Errors
/// [`Error::WeightFile`] naming the file and what is wrong: not a zip, no `data.pkl`, a
/// pickle opcode or global outside a state dict's vocabulary, a missing or short storage,
/// big-endian data, or a top-level value that is not a dict.
pub fn read_torch_archive(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut zip = ZipFile::open(
        path,
        "a PyTorch zip archive; files from torch < 1.6 or other pickles are not read",
    )?;
    let pickle_name = zip
        .names()
        .into_iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .ok_or_else(|| zip.error("no data.pkl in the archive".into()))?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    if let Ok(order) = zip.read(&format!("{prefix}byteorder"))
        && order.trim_ascii() != b"little"
    {
        return Err(zip.error("its tensors are stored big-endian".into()));
    }
    let pickle = zip.read(&pickle_name).map_err(|e| zip.error(e))?;
    let top = Machine::default()
        .run(&pickle)
        .map_err(|e| zip.error(format!("data.pkl: {e}")))?;
    let Value::Dict(entries) = top else {
        return Err(zip.error("data.pkl holds something other than a dict of tensors".into()));
    };
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (key, value) in entries {
        let (Value::Str(name), Value::Tensor(t)) = (key, value) else {
            continue;
        };
        if !storages.contains_key(&t.key) {
            let bytes = zip
                .read(&format!("{prefix}data/{}", t.key))
                .map_err(|e| zip.error(e))?;
            storages.insert(t.key.clone(), bytes);
        }
        let bytes = &storages[&t.key];
        let tensor =
            build_tensor(bytes, &t).map_err(|e| zip.error(format!("tensor `{name}`: {e}")))?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn build_tensor(bytes: &[u8], t: &TensorRef) -> std::result::Result<Tensor, String> {
    let element = t.kind.elt_size_in_bytes();
    let numel = (bytes.len() / element) as i64;
    let view = || {
        format!(
            "offset {}, size {:?}, stride {:?}",
            t.offset, t.size, t.stride
        )
    };
    if t.offset < 0 || t.size.iter().chain(&t.stride).any(|&v| v < 0) {
        return Err(format!("its view ({}) has a negative entry", view()));
    }
    // The furthest element the view reaches must lie inside the storage.
    let last = t
        .size
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (n, s)| {
            acc.checked_add((n - 1).max(0).checked_mul(*s)?)
        })
        .ok_or_else(|| format!("its view ({}) overflows", view()))?;
    if t.size.iter().all(|&n| n > 0) && last >= numel {
        return Err(format!(
            "its view ({}) reaches past its storage of {numel} elements",
            view()
        ));
    }
    let storage = Tensor::f_from_data_size(&bytes[..numel as usize * element], &[numel], t.kind)
        .map_err(|e| e.to_string())?;
    storage
        .f_as_strided(&t.size, &t.stride, Some(t.offset))
        .and_then(|v| v.f_contiguous())
        .map_err(|e| e.to_string())
}

fn storage_kind(class: &str) -> Option<Kind> {
    Some(match class.strip_prefix("torch.")? {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// The pickle stack machine.
#[derive(Default)]
struct Machine {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

type Step = std::result::Result<(), String>;

impl Machine {
    fn run(mut self, code: &[u8]) -> std::result::Result<Value, String> {
        let mut at = 0usize;
        let take = |at: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
            let bytes = code
                .get(*at..*at + n)
                .ok_or_else(|| "truncated pickle".to_string())?;
            *at += n;
            Ok(bytes)
        };
        let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        loop {
            let op = *take(&mut at, 1)?.first().unwrap_or(&b'.');
            match op {
                0x80 => {
                    take(&mut at, 1)?; // PROTO
                }
                0x95 => {
                    take(&mut at, 8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let b = take(&mut at, 1)?[0];
                    self.stack.push(Value::Int(i64::from(b)));
                }
                b'M' => {
                    let b = take(&mut at, 2)?;
                    self.stack
                        .push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
                }
                b'J' => {
                    let b = take(&mut at, 4)?;
                    self.stack.push(Value::Int(i64::from(i32::from_le_bytes([
                        b[0], b[1], b[2], b[3],
                    ]))));
                }
                0x8a => {
                    let n = take(&mut at, 1)?[0] as usize;
                    let b = take(&mut at, n)?;
                    if n > 8 {
                        return Err("an integer wider than 64 bits".into());
                    }
                    let mut v: i64 = 0;
                    for (i, byte) in b.iter().enumerate() {
                        v |= i64::from(*byte) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b = take(&mut at, 8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' | 0x8c | b'T' | b'U' | b'B' | b'C' => {
                    let n = match op {
                        0x8c | b'U' | b'C' => take(&mut at, 1)?[0] as usize,
                        _ => u32_at(take(&mut at, 4)?) as usize,
                    };
                    let s = String::from_utf8_lossy(take(&mut at, n)?).into_owned();
                    self.stack.push(Value::Str(s));
                }
                b'c' => {
                    let mut line = || -> std::result::Result<String, String> {
                        let end = code[at..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .ok_or("truncated GLOBAL")?;
                        let s = String::from_utf8_lossy(&code[at..at + end]).into_owned();
                        at += end + 1;
                        Ok(s)
                    };
                    let module = line()?;
                    let name = line()?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop_str()?;
                    let module = self.pop_str()?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                b'q' => {
                    let i = take(&mut at, 1)?[0];
                    self.put(u32::from(i))?;
                }
                b'r' => {
                    let i = u32_at(take(&mut at, 4)?);
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.put(i)?;
                }
                b'h' => {
                    let i = take(&mut at, 1)?[0];
                    self.get(u32::from(i))?;
                }
                b'j' => {
                    let i = u32_at(take(&mut at, 4)?);
                    self.get(i)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(pairs(items)));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_dict(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_dict(items)?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.stack.last().cloned().ok_or("stack underflow")?;
                    self.stack.push(top);
                }
                b'Q' => self.persistent_load()?,
                b'R' | 0x81 => self.reduce()?,
                b'b' => {
                    // BUILD: object state (an OrderedDict's `_metadata`); not needed.
                    self.pop()?;
                }
                other => return Err(format!("pickle opcode 0x{other:02x} is not read")),
            }
        }
    }

    fn pop(&mut self) -> std::result::Result<Value, String> {
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn pop_str(&mut self) -> std::result::Result<String, String> {
        match self.pop()? {
            Value::Str(s) => Ok(s),
            other => Err(format!("expected a string, got {other:?}")),
        }
    }

    fn pop_mark(&mut self) -> std::result::Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("MARK missing")?;
        if mark > self.stack.len() {
            return Err("stack underflow".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn put(&mut self, i: u32) -> Step {
        let top = self.stack.last().cloned().ok_or("stack underflow")?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn get(&mut self, i: u32) -> Step {
        let v = self.memo.get(&i).cloned().ok_or("memo entry missing")?;
        self.stack.push(v);
        Ok(())
    }

    fn extend_list(&mut self, items: Vec<Value>) -> Step {
        match self.stack.last_mut() {
            Some(Value::List(list)) => {
                list.extend(items);
                Ok(())
            }
            _ => Err("APPEND to something other than a list".into()),
        }
    }

    fn extend_dict(&mut self, items: Vec<Value>) -> Step {
        match self.stack.last_mut() {
            Some(Value::Dict(dict)) => {
                dict.extend(pairs(items));
                Ok(())
            }
            _ => Err("SETITEM on something other than a dict".into()),
        }
    }

    /// `('storage', torch.XStorage, key, location, numel)`.
    fn persistent_load(&mut self) -> Step {
        let Value::Tuple(pid) = self.pop()? else {
            return Err("persistent id is not a tuple".into());
        };
        match pid.as_slice() {
            [Value::Str(tag), Value::Global(class), Value::Str(key), ..] if tag == "storage" => {
                let kind = storage_kind(class)
                    .ok_or_else(|| format!("storage type `{class}` is not read"))?;
                self.stack.push(Value::Storage(key.clone(), kind));
                Ok(())
            }
            _ => Err(format!("unexpected persistent id {pid:?}")),
        }
    }

    fn reduce(&mut self) -> Step {
        let args = match self.pop()? {
            Value::Tuple(args) => args,
            other => return Err(format!("REDUCE arguments are not a tuple: {other:?}")),
        };
        let Value::Global(callable) = self.pop()? else {
            return Err("REDUCE of something other than a global".into());
        };
        let value = match callable.as_str() {
            "collections.OrderedDict" | "builtins.dict" => Value::Dict(Vec::new()),
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                rebuild_tensor(&args)?
            }
            "torch._utils._rebuild_parameter" | "torch.nn.parameter.Parameter" => {
                args.into_iter().next().ok_or("a parameter without data")?
            }
            other => {
                return Err(format!(
                    "it pickles `{other}`, which is not part of a dict of tensors \
                     (save a state dict: torch.save(model.state_dict(), path))"
                ));
            }
        };
        self.stack.push(value);
        Ok(())
    }
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn ints(v: &Value) -> std::result::Result<Vec<i64>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) => Ok(*n),
                other => Err(format!("expected an integer, got {other:?}")),
            })
            .collect(),
        other => Err(format!("expected a tuple of integers, got {other:?}")),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(args: &[Value]) -> std::result::Result<Value, String> {
    match args {
        [
            Value::Storage(key, kind),
            Value::Int(offset),
            size,
            stride,
            ..,
        ] => {
            let (size, stride) = (ints(size)?, ints(stride)?);
            if size.len() != stride.len() {
                return Err("a tensor whose size and stride differ in length".into());
            }
            Ok(Value::Tensor(TensorRef {
                key: key.clone(),
                kind: *kind,
                offset: *offset,
                size,
                stride,
            }))
        }
        _ => Err("unexpected _rebuild_tensor_v2 arguments".into()),
    }
}

#[cfg(test)]
mod tests;
