//! The agent's `/files` endpoints (`browse`, `read`, `download`, `debug`) and the operator
//! calls LIST_FILES and READ_FILE: how Mesos tools and UIs read what tasks wrote to their
//! sandboxes.
//!
//! What is served (the "roots", listed by `GET /files/debug`):
//! - `<work_dir>/containers`, every sandbox (nested ones sit in their parent's), under the
//!   path as configured and under its canonical path;
//! - with a master, `/frameworks/<framework>/executors/<executor>/runs/latest`: the
//!   sandbox of the executor's latest run, as Mesos names it.
//!
//! Confinement: the requested path is normalized lexically (`..` never climbs above `/`),
//! matched against the roots, joined to its root's real directory and canonicalized, and
//! must still lie in that directory. The file is then opened with `O_PATH` and what was
//! opened is checked again through `/proc/self/fd`, so a symlink swapped in after the
//! check leads nowhere. Only regular files are read: a FIFO or a device node planted in a
//! sandbox is neither waited on nor read.
//!
//! Where Holdfast answers differently from Mesos 1.11, on purpose:
//! - a path outside every root (`/etc/passwd`, `..` out of the sandboxes) is 403 with a
//!   reason, not 404 (not served) or 400 (`inaccessible`);
//! - a path that a symlink leads out of a root is 404 with an empty body, exactly as a
//!   missing file: a different answer would let a task probe which files exist on the
//!   host (Mesos answers 400);
//! - in listings a symlink that leads out of its root is shown as the link itself (mode
//!   `l...`), not as its target, whose size, owner and time are not the sandbox's to tell;
//! - `/files/read` replaces bytes that are not UTF-8 with U+FFFD and ends its `data` on a
//!   character boundary (Mesos puts raw bytes in the JSON string, which is then not valid
//!   JSON); READ_FILE and `/files/download` give the bytes as they are.

use std::collections::HashMap;
use std::ffi::{CStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use holdfast_api::agent::{self as api, FileInfo, TimeInfo};
use holdfast_api::ApiError;
use holdfast_containerizer::layout;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::registry::Registry;
use crate::AgentState;

/// Most bytes one read returns: Mesos caps a read at 16 memory pages (64 KiB with 4 KiB
/// pages); clients read on from where the answer ended.
pub const MAX_READ_BYTES: u64 = 16 * 4096;

/// Chunk size of a download, and how many chunks may wait for a slow client.
const DOWNLOAD_CHUNK: usize = 64 * 1024;
const DOWNLOAD_QUEUE: usize = 4;

// ---- Query parameters ---------------------------------------------------------------

/// Decodes a query string as libprocess does: pairs separated by `&` or `;`, `+` for a
/// space, `%XX` escapes; a name given twice keeps its last value.
pub fn parse_query(raw: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for pair in raw.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k)?, percent_decode(v)?);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(ApiError::bad_request(format!(
                        "Unable to decode query string: malformed % escape '{bad}' in '{s}' (write '%' as '%25')"
                    )));
                };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        ApiError::bad_request(format!(
            "Unable to decode query string: '{s}' does not decode to UTF-8"
        ))
    })
}

/// The `path` parameter every endpoint but `debug` needs.
pub fn path_param(q: &HashMap<String, String>) -> Result<&str, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(ApiError::bad_request("Expecting 'path=value' in query")),
    }
}

/// Where `/files/read` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOffset {
    /// `offset=-1`, or no offset at all: the answer is the file's size and no data.
    Size,
    At(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadParams {
    pub path: String,
    pub offset: ReadOffset,
    /// `None`: to the end of the file (or `-1`); capped at [`MAX_READ_BYTES`] either way.
    pub length: Option<u64>,
}

pub fn read_params(q: &HashMap<String, String>) -> Result<ReadParams, ApiError> {
    let path = path_param(q)?.to_owned();
    let offset = match q
        .get("offset")
        .map(|v| parse_int("offset", v))
        .transpose()?
    {
        None | Some(-1) => ReadOffset::Size,
        Some(n) if n < -1 => {
            return Err(ApiError::bad_request(format!(
                "Negative offset provided: {n} (give a byte offset, or -1 for the file's size)"
            )))
        }
        Some(n) => ReadOffset::At(n.unsigned_abs()),
    };
    let length = match q
        .get("length")
        .map(|v| parse_int("length", v))
        .transpose()?
    {
        None | Some(-1) => None,
        Some(n) if n < -1 => {
            return Err(ApiError::bad_request(format!(
                "Negative length provided: {n} (give a byte count, or -1 to read to the end)"
            )))
        }
        Some(n) => Some(n.unsigned_abs()),
    };
    Ok(ReadParams {
        path,
        offset,
        length,
    })
}

fn parse_int(name: &str, value: &str) -> Result<i64, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Failed to parse {name}: '{}' is not an integer",
            value.escape_default()
        ))
    })
}

/// The `jsonp` callback the Mesos web UI asks for (`angular.callbacks._0`). Only names a
/// script can call are taken: the answer is executed by whoever includes it.
pub fn jsonp_param(q: &HashMap<String, String>) -> Result<Option<&str>, ApiError> {
    let Some(cb) = q.get("jsonp") else {
        return Ok(None);
    };
    let ok = !cb.is_empty()
        && cb.len() <= 128
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'));
    if ok {
        Ok(Some(cb))
    } else {
        Err(ApiError::bad_request(format!(
            "'jsonp' must be a JavaScript function name (letters, digits, '_', '.', '$'), not '{}'",
            cb.escape_default()
        )))
    }
}

// ---- Confinement --------------------------------------------------------------------

/// A directory served under a path of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// What requests name: normalized and absolute.
    pub virtual_path: PathBuf,
    /// Where it is: canonical, so a canonical path inside it starts with it.
    pub real: PathBuf,
}

/// Why a path is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesError {
    /// 400: the request is wrong (not absolute, a directory to read, ...).
    Invalid(String),
    /// 403: the path names something outside every root.
    Forbidden(String),
    /// 404 with an empty body, as Mesos answers a missing file.
    NotFound,
    /// 500.
    Internal(String),
}

impl FilesError {
    pub fn to_api(&self) -> ApiError {
        match self {
            FilesError::Invalid(m) => ApiError::bad_request(m.clone()),
            FilesError::Forbidden(m) => ApiError::new(403, m.clone()),
            FilesError::NotFound => ApiError::not_found(""),
            FilesError::Internal(m) => {
                // Logged once, here, where it becomes an answer.
                tracing::error!(error = %m, "files request failed");
                ApiError::internal(m.clone())
            }
        }
    }
}

/// `path` with `.` and empty components dropped and `..` applied lexically; `..` at the
/// top stays at `/`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                // Popping the root itself is a no-op, so `/..` is `/`.
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The sandboxes root of `work_dir`: `<work_dir>/containers` under the name it was
/// configured with and under its canonical name.
pub fn sandbox_roots(work_dir: &Path) -> io::Result<Vec<Root>> {
    let configured = normalize(&std::path::absolute(work_dir)?.join(layout::NESTED));
    let under_real = fs::canonicalize(work_dir)?.join(layout::NESTED);
    // Not there before the first launch; nothing could be served from it then anyway.
    let real = fs::canonicalize(&under_real).unwrap_or(under_real);
    let mut roots = vec![Root {
        virtual_path: configured.clone(),
        real: real.clone(),
    }];
    if real != configured {
        roots.push(Root {
            virtual_path: real.clone(),
            real,
        });
    }
    Ok(roots)
}

/// A requested path, found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical, inside `root`.
    pub real: PathBuf,
    /// The real directory of the root it was found in.
    pub root: PathBuf,
    /// The path as asked for (without a `file://` scheme or trailing `/`): listings name
    /// entries below it, as Mesos does.
    pub shown: String,
}

/// Maps a requested path to the real file it names, confined to the root it is under.
pub fn resolve(roots: &[Root], requested: &str) -> Result<Resolved, FilesError> {
    let text = requested.strip_prefix("file://").unwrap_or(requested);
    if text.contains('\0') {
        return Err(FilesError::Invalid(format!(
            "'{}' contains a NUL byte",
            text.escape_default()
        )));
    }
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(FilesError::Invalid(format!(
            "'{text}' is not an absolute path; give one under a directory GET /files/debug lists"
        )));
    }
    let wanted = normalize(path);
    let outside = || {
        FilesError::Forbidden(format!(
            "'{text}' is not in a sandbox of this agent; GET /files/debug lists the directories it serves"
        ))
    };
    // The most specific root wins: a framework's run lies inside the sandboxes root.
    let (root, rest) = roots
        .iter()
        .filter_map(|r| Some((r, wanted.strip_prefix(&r.virtual_path).ok()?)))
        .max_by_key(|(r, _)| r.virtual_path.components().count())
        .ok_or_else(outside)?;
    let joined = root.real.join(rest);
    let real = match fs::canonicalize(&joined) {
        Ok(p) => p,
        Err(e) if is_missing(&e) => return Err(FilesError::NotFound),
        Err(e) => return Err(FilesError::Invalid(format!("cannot resolve '{text}': {e}"))),
    };
    if !real.starts_with(&root.real) {
        // A symlink led out: answered as a missing file (see the module doc).
        return Err(FilesError::NotFound);
    }
    let shown = match text.trim_end_matches('/') {
        "" => "/".to_owned(),
        s => s.to_owned(),
    };
    Ok(Resolved {
        real,
        root: root.real.clone(),
        shown,
    })
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A resolved path, opened without following anything new and checked again.
struct Opened {
    /// An `O_PATH` descriptor: opening it had no effect on the file.
    file: File,
    meta: Metadata,
}

fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn open_confined(r: &Resolved) -> Result<Opened, FilesError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&r.real)
        .map_err(|e| match e {
            e if is_missing(&e) => FilesError::NotFound,
            e => FilesError::Internal(format!("cannot open '{}': {e}", r.real.display())),
        })?;
    // What was opened, whatever happened to the path since it was resolved.
    let opened = fs::read_link(fd_path(&file)).map_err(|e| {
        FilesError::Internal(format!(
            "cannot read back the path of '{}': {e}",
            r.real.display()
        ))
    })?;
    if !opened.starts_with(&r.root) {
        return Err(FilesError::NotFound);
    }
    let meta = file
        .metadata()
        .map_err(|e| FilesError::Internal(format!("cannot stat '{}': {e}", r.real.display())))?;
    Ok(Opened { file, meta })
}

/// A regular file of a resolved path, open for reading, and its metadata.
fn open_regular(r: &Resolved, verb: &str) -> Result<(File, Metadata), FilesError> {
    let o = open_confined(r)?;
    if o.meta.is_dir() {
        return Err(FilesError::Invalid(format!("Cannot {verb} a directory")));
    }
    if !o.meta.is_file() {
        return Err(FilesError::Invalid(format!(
            "'{}' is not a regular file ({})",
            r.shown,
            mode_string(o.meta.mode())
        )));
    }
    // Reopening the descriptor opens the very inode that was checked.
    let file = File::open(fd_path(&o.file))
        .map_err(|e| FilesError::Internal(format!("cannot open '{}': {e}", r.real.display())))?;
    Ok((file, o.meta))
}

// ---- Entries ------------------------------------------------------------------------

/// `ls -l`'s type and permission letters, as Mesos's `/files/browse` shows them (no
/// setuid, setgid or sticky letters).
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFLNK => 'l',
        libc::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// One `/files/browse` entry: Mesos's `FileInfo` with the mode as `ls` shows it and the
/// time as float seconds.
pub fn legacy_entry(f: &FileInfo) -> Value {
    serde_json::json!({
        "gid": f.gid,
        "mode": mode_string(f.mode),
        "mtime": (f.mtime.nanoseconds / 1_000_000_000) as f64,
        "nlink": f.nlink,
        "path": f.path,
        "size": f.size,
        "uid": f.uid,
    })
}

/// User and group names by id, looked up once per listing.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| user_name(uid).unwrap_or_else(|| uid.to_string()))
            .clone()
    }

    pub fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| group_name(gid).unwrap_or_else(|| gid.to_string()))
            .clone()
    }
}

/// Runs a reentrant NSS lookup with a buffer that grows while the C library says it is
/// too small.
fn nss_lookup(mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, bool)) -> bool {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        let (rc, found) = call(&mut buf);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return rc == 0 && found;
    }
}

fn user_name(uid: u32) -> Option<String> {
    // SAFETY: passwd is plain data; all zeroes is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut name = None;
    let found = nss_lookup(|buf| {
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to a live buffer of the stated size; the reentrant
        // lookup writes only into them.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == 0 && !result.is_null() {
            // SAFETY: on success pw_name points to a NUL-terminated string inside buf,
            // which is still alive here.
            let n = unsafe { CStr::from_ptr(pwd.pw_name) };
            name = Some(n.to_string_lossy().into_owned());
        }
        (rc, !result.is_null())
    });
    name.filter(|_| found)
}

fn group_name(gid: u32) -> Option<String> {
    // SAFETY: group is plain data; all zeroes is a valid value.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut name = None;
    let found = nss_lookup(|buf| {
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in user_name.
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == 0 && !result.is_null() {
            // SAFETY: on success gr_name points to a NUL-terminated string inside buf.
            let n = unsafe { CStr::from_ptr(grp.gr_name) };
            name = Some(n.to_string_lossy().into_owned());
        }
        (rc, !result.is_null())
    });
    name.filter(|_| found)
}

fn file_info(path: String, meta: &Metadata, names: &mut Names) -> FileInfo {
    FileInfo {
        path,
        nlink: meta.nlink(),
        size: meta.size(),
        // Whole seconds, as Mesos reports them.
        mtime: TimeInfo::from_secs(meta.mtime()),
        mode: meta.mode(),
        uid: names.user(meta.uid()),
        gid: names.group(meta.gid()),
    }
}

// ---- The operations (blocking) ------------------------------------------------------

/// The entries of a directory, sorted by name. A file lists as nothing, as in Mesos.
pub fn browse(roots: &[Root], path: &str) -> Result<Vec<FileInfo>, FilesError> {
    let r = resolve(roots, path)?;
    let o = open_confined(&r)?;
    if !o.meta.is_dir() {
        return Ok(Vec::new());
    }
    let dir = fd_path(&o.file);
    let mut entries: Vec<OsString> = fs::read_dir(&dir)
        .map_err(|e| FilesError::Internal(format!("cannot list '{}': {e}", r.real.display())))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    entries.sort();
    let mut names = Names::default();
    let mut out = Vec::with_capacity(entries.len());
    for name in entries {
        let full = dir.join(&name);
        // Gone since it was listed: not worth an error.
        let Ok(link) = fs::symlink_metadata(&full) else {
            continue;
        };
        let meta = if link.file_type().is_symlink() {
            // Followed only when it stays in the root: the target's size, owner and time
            // are not the sandbox's to tell otherwise.
            match fs::canonicalize(&full) {
                Ok(target) if target.starts_with(&r.root) => fs::metadata(&target).unwrap_or(link),
                _ => link,
            }
        } else {
            link
        };
        let shown = format!(
            "{}/{}",
            r.shown.trim_end_matches('/'),
            name.to_string_lossy()
        );
        out.push(file_info(shown, &meta, &mut names));
    }
    Ok(out)
}

/// What a read returns: the file's size when it was opened, and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub size: u64,
    pub data: Vec<u8>,
}

/// How many bytes a read of a `size`-byte file from `offset` returns.
pub fn chunk_len(size: u64, offset: u64, length: Option<u64>) -> u64 {
    if offset >= size {
        return 0;
    }
    length.unwrap_or(size - offset).min(MAX_READ_BYTES)
}

pub fn read(
    roots: &[Root],
    path: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<Chunk, FilesError> {
    let r = resolve(roots, path)?;
    let (file, meta) = open_regular(&r, "read")?;
    let size = meta.len();
    // Bounded by MAX_READ_BYTES, so it fits in memory and in usize.
    let want = chunk_len(size, offset, length) as usize;
    let mut data = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut data[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(FilesError::Internal(format!(
                    "cannot read '{}': {e}",
                    r.real.display()
                )))
            }
        }
    }
    data.truncate(got);
    Ok(Chunk { size, data })
}

/// `/files/read`'s `data`: text. A character cut at the end of the chunk is left for the
/// next read (unless it is all there is, so a reader always moves on); bytes that are
/// not UTF-8 become U+FFFD.
pub fn text_of(data: &[u8]) -> String {
    // A character cut short starts at most 3 bytes before the end.
    let tail_start = (data.len().saturating_sub(3)..data.len())
        .rev()
        .find(|&i| data[i] & 0xC0 != 0x80)
        .unwrap_or(data.len());
    let cut = match std::str::from_utf8(&data[tail_start..]) {
        // No error length: a sequence that merely stops early.
        Err(e) if e.error_len().is_none() && tail_start + e.valid_up_to() > 0 => {
            tail_start + e.valid_up_to()
        }
        _ => data.len(),
    };
    String::from_utf8_lossy(&data[..cut]).into_owned()
}

/// A file to download: open, its size when opened, and the name to save it under.
pub struct Download {
    pub file: File,
    pub size: u64,
    pub name: String,
}

pub fn open_download(roots: &[Root], path: &str) -> Result<Download, FilesError> {
    let r = resolve(roots, path)?;
    let (file, meta) = open_regular(&r, "download")?;
    let name = r
        .real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Download {
        file,
        size: meta.len(),
        name,
    })
}

/// Content types by extension: the common part of Mesos's table (itself Python's);
/// anything else is `application/octet-stream`, as in Mesos.
const CONTENT_TYPES: &[(&str, &str)] = &[
    (".c", "text/plain"),
    (".css", "text/css"),
    (".gif", "image/gif"),
    (".h", "text/plain"),
    (".htm", "text/html"),
    (".html", "text/html"),
    (".jpeg", "image/jpeg"),
    (".jpg", "image/jpeg"),
    (".js", "application/x-javascript"),
    (".mp4", "video/mp4"),
    (".pdf", "application/pdf"),
    (".pl", "text/plain"),
    (".png", "image/png"),
    (".py", "text/x-python"),
    (".sh", "application/x-sh"),
    (".tar", "application/x-tar"),
    (".tsv", "text/tab-separated-values"),
    (".txt", "text/plain"),
    (".xml", "text/xml"),
    (".zip", "application/zip"),
];

pub fn content_type(name: &str) -> &'static str {
    name.rfind('.')
        .and_then(|i| {
            let ext = &name[i..];
            CONTENT_TYPES.iter().find(|(e, _)| *e == ext)
        })
        .map_or("application/octet-stream", |(_, t)| t)
}

/// `attachment; filename=<name>` as Mesos sends it; a name that cannot stand bare in a
/// header is quoted, with its exact spelling in `filename*` (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';' | b','));
    if bare {
        return format!("attachment; filename={name}");
    }
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' ' => ' ',
            '"' | '\\' => '_',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            exact.push(char::from(b));
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

// ---- Frameworks' runs ---------------------------------------------------------------

const FRAMEWORKS: &str = "/frameworks";

/// `/frameworks/<f>/executors/<e>/runs/latest` and the directory of that executor's
/// latest run, for every executor the registry still knows (shut-down frameworks too).
pub fn executor_runs(registry: &Registry) -> Vec<(PathBuf, PathBuf)> {
    let mut out: HashMap<PathBuf, PathBuf> = HashMap::new();
    // Completed frameworks first, so a framework that is back wins with its live runs.
    let frameworks = registry
        .completed_frameworks
        .iter()
        .map(|f| (f.info.id.as_ref().map(|i| i.value.as_str()), f))
        .chain(
            registry
                .frameworks
                .iter()
                .map(|(id, f)| (Some(id.as_str()), f)),
        );
    for (fid, fw) in frameworks {
        let Some(fid) = fid.filter(|f| plain_component(f)) else {
            continue;
        };
        // Oldest first: a later run of the same executor id replaces an earlier one.
        let runs = fw.completed_executors.iter().chain(fw.executors.values());
        for e in runs {
            let eid = &e.info.executor_id.value;
            if !plain_component(eid) {
                continue;
            }
            let virtual_path =
                PathBuf::from(format!("{FRAMEWORKS}/{fid}/executors/{eid}/runs/latest"));
            out.insert(virtual_path, e.directory.clone());
        }
    }
    let mut v: Vec<_> = out.into_iter().collect();
    v.sort();
    v
}

/// An id that is one path component as it stands (ids come from frameworks).
fn plain_component(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\0'])
}

/// Roots for the executor runs under `wanted` (all of them for `None`), each checked to
/// lie in the sandboxes.
fn run_roots(runs: Vec<(PathBuf, PathBuf)>, sandboxes: &Path, wanted: Option<&Path>) -> Vec<Root> {
    runs.into_iter()
        .filter(|(v, _)| wanted.is_none_or(|w| w.starts_with(v)))
        .filter_map(|(virtual_path, dir)| {
            let real = fs::canonicalize(dir).ok()?;
            real.starts_with(sandboxes)
                .then_some(Root { virtual_path, real })
        })
        .collect()
}

// ---- HTTP ---------------------------------------------------------------------------

/// `/files/*`, merged into the agent's router.
pub fn router() -> Router<Arc<AgentState>> {
    Router::new()
        .route("/files/browse", get(browse_handler))
        .route("/files/read", get(read_handler))
        .route("/files/download", get(download_handler))
        .route("/files/debug", get(debug_handler))
}

/// What a request may reach: the sandboxes, plus the framework runs under `wanted` (all
/// of them for `None`) when the agent has a master.
async fn roots(state: &AgentState, wanted: Option<&str>) -> Result<Vec<Root>, ApiError> {
    let Some(c) = state.containerizer.get() else {
        return Err(ApiError::unavailable("Agent has not finished recovery"));
    };
    let work_dir = c.config().work_dir.clone();
    let wanted = wanted.map(|w| normalize(Path::new(w.strip_prefix("file://").unwrap_or(w))));
    let runs = match (state.cluster(), &wanted) {
        (Some(cluster), None) => registry_runs(cluster).await,
        (Some(cluster), Some(w)) if w.starts_with(FRAMEWORKS) => registry_runs(cluster).await,
        _ => Vec::new(),
    };
    blocking(move || {
        let mut roots = sandbox_roots(&work_dir).map_err(|e| {
            FilesError::Internal(format!(
                "cannot resolve the work dir '{}': {e}",
                work_dir.display()
            ))
        })?;
        let sandboxes = roots[0].real.clone();
        roots.extend(run_roots(runs, &sandboxes, wanted.as_deref()));
        Ok(roots)
    })
    .await
}

async fn registry_runs(cluster: &crate::cluster::Cluster) -> Vec<(PathBuf, PathBuf)> {
    cluster
        .snapshot()
        .await
        .map(|s| executor_runs(&s.registry))
        .unwrap_or_default()
}

/// Runs file work on the blocking pool (NSS lookups and disks can take their time).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_api()),
        Err(e) => Err(FilesError::Internal(format!("files task failed: {e}")).to_api()),
    }
}

fn query(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    parse_query(uri.query().unwrap_or(""))
}

/// JSON, or with `jsonp` the script `cb(<json>)` as Mesos sends it.
fn json_answer(value: &Value, jsonp: Option<&str>) -> Response {
    match jsonp {
        None => crate::json(value.clone()),
        Some(cb) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{cb}({value})"),
        )
            .into_response(),
    }
}

fn answer(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| crate::error_response(&e))
}

async fn browse_handler(State(state): State<Arc<AgentState>>, uri: Uri) -> Response {
    answer(
        async {
            let q = query(&uri)?;
            let path = path_param(&q)?.to_owned();
            let jsonp = jsonp_param(&q)?;
            let roots = roots(&state, Some(&path)).await?;
            let list = blocking(move || browse(&roots, &path)).await?;
            let entries: Vec<Value> = list.iter().map(legacy_entry).collect();
            Ok(json_answer(&Value::Array(entries), jsonp))
        }
        .await,
    )
}

async fn read_handler(State(state): State<Arc<AgentState>>, uri: Uri) -> Response {
    answer(
        async {
            let q = query(&uri)?;
            let p = read_params(&q)?;
            let jsonp = jsonp_param(&q)?;
            let roots = roots(&state, Some(&p.path)).await?;
            let (start, length) = match p.offset {
                ReadOffset::Size => (0, Some(0)),
                ReadOffset::At(n) => (n, p.length),
            };
            let path = p.path;
            let chunk = blocking(move || read(&roots, &path, start, length)).await?;
            let offset = match p.offset {
                ReadOffset::Size => chunk.size,
                ReadOffset::At(n) => n,
            };
            let body = serde_json::json!({"data": text_of(&chunk.data), "offset": offset});
            Ok(json_answer(&body, jsonp))
        }
        .await,
    )
}

async fn download_handler(State(state): State<Arc<AgentState>>, uri: Uri) -> Response {
    answer(
        async {
            let q = query(&uri)?;
            let path = path_param(&q)?.to_owned();
            let roots = roots(&state, Some(&path)).await?;
            let d = blocking(move || open_download(&roots, &path)).await?;
            let disposition = HeaderValue::try_from(content_disposition(&d.name))
                .map_err(|e| ApiError::internal(format!("cannot name '{}': {e}", d.name)))?;
            let mut r = Response::new(Body::new(FileBody::start(d.file, d.size)));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&d.name)),
            );
            h.insert(header::CONTENT_DISPOSITION, disposition);
            Ok(r)
        }
        .await,
    )
}

async fn debug_handler(State(state): State<Arc<AgentState>>, uri: Uri) -> Response {
    answer(
        async {
            let q = query(&uri)?;
            let jsonp = jsonp_param(&q)?;
            let roots = roots(&state, None).await?;
            let map: serde_json::Map<String, Value> = roots
                .into_iter()
                .map(|r| {
                    (
                        r.virtual_path.display().to_string(),
                        Value::String(r.real.display().to_string()),
                    )
                })
                .collect();
            Ok(json_answer(&Value::Object(map), jsonp))
        }
        .await,
    )
}

/// LIST_FILES on `POST /api/v1`.
pub(crate) async fn list_files(state: &AgentState, path: String) -> Result<Value, ApiError> {
    let roots = roots(state, Some(&path)).await?;
    let list = blocking(move || browse(&roots, &path)).await?;
    Ok(api::list_files_response(&list))
}

/// READ_FILE on `POST /api/v1`.
pub(crate) async fn read_file(state: &AgentState, call: api::ReadFile) -> Result<Value, ApiError> {
    let roots = roots(state, Some(&call.path)).await?;
    let chunk = blocking(move || read(&roots, &call.path, call.offset, call.length)).await?;
    Ok(api::read_file_response(chunk.size, &chunk.data))
}

/// A download's body: `size` bytes of the file (its size when opened, so a log that grows
/// meanwhile still matches the Content-Length), read on the blocking pool a chunk at a
/// time, at most a few chunks ahead of the client.
struct FileBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    size: u64,
}

impl FileBody {
    fn start(file: File, size: u64) -> FileBody {
        let (tx, rx) = mpsc::channel(DOWNLOAD_QUEUE);
        let file = Arc::new(file);
        tokio::spawn(async move {
            let mut pos = 0u64;
            while pos < size {
                // At most DOWNLOAD_CHUNK, so it fits in usize.
                let want = (size - pos).min(DOWNLOAD_CHUNK as u64) as usize;
                let f = file.clone();
                let chunk = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    let n = f.read_at(&mut buf, pos)?;
                    buf.truncate(n);
                    Ok::<_, io::Error>(buf)
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)));
                let item = match chunk {
                    // Shorter than when it was opened: the client must not take what it
                    // got for the whole file, so the body ends in an error.
                    Ok(buf) if buf.is_empty() => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank during the download",
                    )),
                    Ok(buf) => {
                        pos += buf.len() as u64;
                        Ok(Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    // The client is gone, or the body has ended in an error.
                    break;
                }
            }
        });
        FileBody { rx, size }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Read once, before the first frame: it becomes the Content-Length.
        http_body::SizeHint::with_exact(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A work dir with a sandbox `c1` (holding `stdout` and a nested sandbox `n1`), a
    /// `meta` dir beside the sandboxes, and the roots that serve it.
    struct Work {
        _dir: tempfile::TempDir,
        work: PathBuf,
        sandbox: PathBuf,
        roots: Vec<Root>,
    }

    fn work() -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        let sandbox = work.join("containers/c1");
        fs::create_dir_all(sandbox.join("containers/n1")).expect("sandboxes");
        fs::write(sandbox.join("stdout"), "hello\n").expect("stdout");
        fs::write(sandbox.join("containers/n1/stderr"), "nested\n").expect("stderr");
        fs::create_dir(work.join("meta")).expect("meta");
        fs::write(work.join("meta/secret"), "checkpoint").expect("secret");
        let roots = sandbox_roots(&work).expect("roots");
        Work {
            _dir: dir,
            work,
            sandbox,
            roots,
        }
    }

    fn s(p: &Path) -> String {
        p.display().to_string()
    }

    fn real(p: &Path) -> PathBuf {
        fs::canonicalize(p).expect("canonical")
    }

    fn is_forbidden(r: Result<Resolved, FilesError>) -> bool {
        matches!(r, Err(FilesError::Forbidden(_)))
    }

    #[test]
    fn paths_inside_the_sandboxes_resolve_to_their_files() {
        let w = work();
        let stdout = real(&w.sandbox.join("stdout"));
        for asked in [
            s(&w.sandbox.join("stdout")),
            format!("file://{}", s(&w.sandbox.join("stdout"))),
            format!("{}//./stdout", s(&w.sandbox)),
            format!("{}/containers/n1/../../stdout", s(&w.sandbox)),
            format!("{}/../c1/stdout", s(&w.sandbox)),
        ] {
            let r = resolve(&w.roots, &asked).unwrap_or_else(|e| panic!("{asked}: {e:?}"));
            assert_eq!(r.real, stdout, "{asked}");
        }
        let nested = resolve(&w.roots, &format!("{}/containers/n1/", s(&w.sandbox)))
            .expect("nested sandbox");
        assert_eq!(nested.real, real(&w.sandbox.join("containers/n1")));
        assert_eq!(nested.shown, format!("{}/containers/n1", s(&w.sandbox)));
        assert_eq!(
            resolve(&w.roots, &s(&w.sandbox.join("nope"))),
            Err(FilesError::NotFound)
        );
        assert_eq!(
            resolve(&w.roots, &s(&w.sandbox.join("stdout/below"))),
            Err(FilesError::NotFound)
        );
    }

    #[test]
    fn paths_outside_the_sandboxes_are_refused_without_looking() {
        let w = work();
        fs::create_dir(w.work.join("containers-evil")).expect("sibling");
        fs::write(w.work.join("containers-evil/x"), "x").expect("x");
        for asked in [
            "/etc/passwd".to_string(),
            "/".to_string(),
            format!("{}/../../meta/secret", s(&w.sandbox)),
            format!("{}/../meta/secret", s(&w.work.join("containers"))),
            format!("{}/../../../../../../../../etc/passwd", s(&w.sandbox)),
            s(&w.work.join("containers-evil/x")),
            s(&w.work.join("meta/secret")),
            s(&w.work),
        ] {
            assert!(is_forbidden(resolve(&w.roots, &asked)), "{asked}");
        }
        for asked in ["containers/c1/stdout", "", "stdout"] {
            assert!(
                matches!(resolve(&w.roots, asked), Err(FilesError::Invalid(m)) if m.contains("absolute")),
                "{asked}"
            );
        }
        let nul = format!("{}/stdout\0.txt", s(&w.sandbox));
        assert!(
            matches!(resolve(&w.roots, &nul), Err(FilesError::Invalid(m)) if m.contains("NUL"))
        );
    }

    #[test]
    fn symlinks_lead_nowhere_outside_the_sandbox() {
        let w = work();
        symlink("/etc/passwd", w.sandbox.join("passwd")).expect("link");
        symlink("/etc", w.sandbox.join("etc")).expect("link");
        symlink("../../meta/secret", w.sandbox.join("secret")).expect("link");
        symlink("/nonexistent/file", w.sandbox.join("dangling")).expect("link");
        symlink("stdout", w.sandbox.join("out")).expect("link");
        symlink("../c1/containers/n1", w.sandbox.join("nested")).expect("link");
        for name in ["passwd", "etc/passwd", "etc", "secret", "dangling"] {
            let asked = s(&w.sandbox.join(name));
            // The same answer as a missing file, whether or not the target exists.
            assert_eq!(
                resolve(&w.roots, &asked),
                Err(FilesError::NotFound),
                "{name}"
            );
            assert_eq!(
                read(&w.roots, &asked, 0, None),
                Err(FilesError::NotFound),
                "{name}"
            );
            assert_eq!(
                browse(&w.roots, &asked),
                Err(FilesError::NotFound),
                "{name}"
            );
        }
        let out = resolve(&w.roots, &s(&w.sandbox.join("out"))).expect("link inside");
        assert_eq!(out.real, real(&w.sandbox.join("stdout")));
        let nested = read(&w.roots, &s(&w.sandbox.join("nested/stderr")), 0, None);
        assert_eq!(nested.map(|c| c.data), Ok(b"nested\n".to_vec()));
    }

    #[test]
    fn a_file_swapped_after_the_check_is_not_opened() {
        let w = work();
        // What open_confined sees when the path was checked inside the sandbox but a
        // symlink to /etc/passwd took its place before the open.
        let swapped = Resolved {
            real: PathBuf::from("/etc/passwd"),
            root: w.roots[0].real.clone(),
            shown: s(&w.sandbox.join("stdout")),
        };
        assert!(matches!(open_confined(&swapped), Err(FilesError::NotFound)));
    }

    #[test]
    fn url_encoded_tricks_decode_before_the_check() {
        let w = work();
        let path_of = |raw: &str| -> String {
            let q = parse_query(&format!("path={raw}&offset=0")).expect("query");
            path_param(&q).expect("path").to_owned()
        };
        let root = s(&w.work.join("containers"));
        assert_eq!(path_of("%2Fetc%2Fpasswd"), "/etc/passwd");
        assert!(is_forbidden(resolve(&w.roots, &path_of("%2Fetc%2Fpasswd"))));
        let dots = path_of(&format!("{root}/c1/%2e%2e/%2E%2E/meta/secret"));
        assert!(dots.ends_with("/c1/../../meta/secret"), "{dots}");
        assert!(is_forbidden(resolve(&w.roots, &dots)));
        // Encoded twice: decoded once, it is a file named `%2e%2e`, which is not there.
        let twice = path_of(&format!("{root}/c1/%252e%252e/%252e%252e/meta/secret"));
        assert!(twice.contains("/%2e%2e/"), "{twice}");
        assert_eq!(resolve(&w.roots, &twice), Err(FilesError::NotFound));
        let nul = path_of(&format!("{root}/c1/stdout%00"));
        assert!(matches!(
            resolve(&w.roots, &nul),
            Err(FilesError::Invalid(_))
        ));
        assert_eq!(path_of("a+b%20c"), "a b c");
        let bad = parse_query("path=%zz").expect_err("malformed");
        assert_eq!(bad.status, 400);
        assert!(bad.message.contains("'%zz'"), "{}", bad.message);
        let latin1 = parse_query("path=%ff").expect_err("not UTF-8");
        assert!(latin1.message.contains("UTF-8"), "{}", latin1.message);
    }

    #[test]
    fn a_work_dir_reached_through_a_symlink_is_served_under_both_names() {
        let w = work();
        let alias = w.work.parent().expect("parent").join("alias");
        symlink(&w.work, &alias).expect("alias");
        let roots = sandbox_roots(&alias).expect("roots");
        let virtuals: Vec<&Path> = roots.iter().map(|r| r.virtual_path.as_path()).collect();
        assert!(
            virtuals.contains(&alias.join("containers").as_path()),
            "{virtuals:?}"
        );
        assert!(
            virtuals.contains(&real(&w.work).join("containers").as_path()),
            "{virtuals:?}"
        );
        let stdout = real(&w.sandbox.join("stdout"));
        for base in [alias.join("containers/c1"), real(&w.sandbox)] {
            let r = resolve(&roots, &s(&base.join("stdout"))).expect("resolves");
            assert_eq!(r.real, stdout);
        }
    }

    #[test]
    fn browse_lists_entries_as_mesos_does() {
        let w = work();
        symlink("/etc/passwd", w.sandbox.join("passwd")).expect("link");
        symlink("stdout", w.sandbox.join("out")).expect("link");
        let fifo = std::ffi::CString::new(s(&w.sandbox.join("fifo"))).expect("cstr");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let asked = format!("{}/", s(&w.sandbox));
        let list = browse(&w.roots, &asked).expect("browse");
        let names: Vec<&str> = list.iter().map(|f| f.path.as_str()).collect();
        let base = s(&w.sandbox);
        assert_eq!(
            names,
            ["containers", "fifo", "out", "passwd", "stdout"].map(|n| format!("{base}/{n}"))
        );
        let by = |n: &str| {
            list.iter()
                .find(|f| f.path.ends_with(&format!("/{n}")))
                .map(legacy_entry)
                .expect("entry")
        };
        let me = Names::default().user(fs::metadata(&w.sandbox).expect("stat").uid());
        let stdout = by("stdout");
        let stdout_mode = fs::metadata(w.sandbox.join("stdout")).expect("stat").mode();
        assert_eq!(stdout["mode"], mode_string(stdout_mode));
        assert!(stdout["mode"]
            .as_str()
            .is_some_and(|m| m.starts_with("-rw")));
        assert_eq!(stdout["size"], 6);
        assert_eq!(stdout["nlink"], 1);
        assert_eq!(stdout["uid"], me.as_str());
        assert!(stdout["mtime"].is_f64(), "{stdout}");
        assert_eq!(
            stdout
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(
                ["gid", "mode", "mtime", "nlink", "path", "size", "uid"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert!(by("containers")["mode"]
            .as_str()
            .is_some_and(|m| m.starts_with('d')));
        assert!(by("fifo")["mode"]
            .as_str()
            .is_some_and(|m| m.starts_with('p')));
        // A link inside shows its target; one leading out shows only itself.
        assert_eq!(by("out")["size"], 6);
        assert_eq!(by("out")["mode"], stdout["mode"]);
        assert!(by("passwd")["mode"]
            .as_str()
            .is_some_and(|m| m.starts_with('l')));
        assert_eq!(by("passwd")["size"], "/etc/passwd".len());

        assert_eq!(browse(&w.roots, &s(&w.sandbox.join("stdout"))), Ok(vec![]));
        assert_eq!(
            browse(&w.roots, &s(&w.sandbox.join("nope"))),
            Err(FilesError::NotFound)
        );
    }

    #[test]
    fn reads_go_by_offset_and_length_and_are_capped() {
        let w = work();
        let stdout = s(&w.sandbox.join("stdout"));
        let read_at = |offset, length| read(&w.roots, &stdout, offset, length).expect("read");
        assert_eq!(
            read_at(0, Some(3)),
            Chunk {
                size: 6,
                data: b"hel".to_vec()
            }
        );
        assert_eq!(
            read_at(4, None),
            Chunk {
                size: 6,
                data: b"o\n".to_vec()
            }
        );
        assert_eq!(read_at(0, Some(0)).data, b"");
        assert_eq!(read_at(6, None).data, b"");
        assert_eq!(
            read_at(1000, Some(5)),
            Chunk {
                size: 6,
                data: vec![]
            }
        );

        let big = w.sandbox.join("big");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&big, &content).expect("big");
        let c = read(&w.roots, &s(&big), 10, None).expect("read big");
        assert_eq!(c.size, 200_000);
        assert_eq!(c.data.len() as u64, MAX_READ_BYTES);
        assert_eq!(c.data[..], content[10..10 + MAX_READ_BYTES as usize]);
        let c = read(&w.roots, &s(&big), 0, Some(1 << 40)).expect("read big");
        assert_eq!(c.data.len() as u64, MAX_READ_BYTES);

        assert_eq!(
            read(&w.roots, &s(&w.sandbox), 0, None),
            Err(FilesError::Invalid("Cannot read a directory".into()))
        );
        let fifo_path = w.sandbox.join("fifo");
        let fifo = std::ffi::CString::new(s(&fifo_path)).expect("cstr");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        // Refused without opening it for reading, which would wait for a writer.
        assert!(matches!(
            read(&w.roots, &s(&fifo_path), 0, None),
            Err(FilesError::Invalid(m)) if m.contains("not a regular file")
        ));
    }

    #[test]
    fn downloads_name_the_file_and_its_type() {
        let w = work();
        fs::write(w.sandbox.join("report.html"), "<p>hi</p>").expect("html");
        let d = open_download(&w.roots, &s(&w.sandbox.join("report.html"))).expect("download");
        assert_eq!((d.size, d.name.as_str()), (9, "report.html"));
        assert_eq!(content_type(&d.name), "text/html");
        let mut got = Vec::new();
        io::Read::read_to_end(&mut &d.file, &mut got).expect("read");
        assert_eq!(got, b"<p>hi</p>");
        assert!(matches!(
            open_download(&w.roots, &s(&w.sandbox)),
            Err(FilesError::Invalid(m)) if m == "Cannot download a directory"
        ));

        assert_eq!(content_type("stdout"), "application/octet-stream");
        assert_eq!(content_type("a.txt"), "text/plain");
        assert_eq!(content_type("a.tar.gz"), "application/octet-stream");
        assert_eq!(content_type(".txt"), "text/plain");
        assert_eq!(content_type("a.TXT"), "application/octet-stream");
        assert_eq!(content_disposition("stdout"), "attachment; filename=stdout");
        assert_eq!(
            content_disposition("my log;\"x\".txt"),
            "attachment; filename=\"my log;_x_.txt\"; filename*=UTF-8''my%20log%3B%22x%22.txt"
        );
        let crlf = content_disposition("a\r\nSet-Cookie: x");
        assert!(!crlf.contains(['\r', '\n']), "{crlf}");
        assert!(HeaderValue::try_from(content_disposition("résumé.pdf")).is_ok());
    }

    #[test]
    fn read_parameters_follow_mesos() {
        let params = |raw: &str| read_params(&parse_query(raw).expect("query"));
        let ok = |raw: &str| params(raw).expect(raw);
        assert_eq!(
            ok("path=/x&offset=0&length=100"),
            ReadParams {
                path: "/x".into(),
                offset: ReadOffset::At(0),
                length: Some(100)
            }
        );
        assert_eq!(ok("path=/x").offset, ReadOffset::Size);
        assert_eq!(ok("path=/x&offset=-1").offset, ReadOffset::Size);
        assert_eq!(ok("path=/x&offset=5&length=-1").length, None);
        assert_eq!(ok("path=/x;offset=7;offset=9").offset, ReadOffset::At(9));
        for (raw, needle) in [
            ("offset=0", "Expecting 'path=value' in query"),
            ("path=&offset=0", "Expecting 'path=value' in query"),
            ("path=/x&offset=-2", "Negative offset provided: -2"),
            (
                "path=/x&offset=abc",
                "Failed to parse offset: 'abc' is not an integer",
            ),
            ("path=/x&offset=0&length=-5", "Negative length provided: -5"),
            ("path=/x&offset=0&length=1e3", "Failed to parse length"),
            (
                "path=/x&offset=99999999999999999999",
                "Failed to parse offset",
            ),
        ] {
            let e = params(raw).expect_err(raw);
            assert_eq!(e.status, 400, "{raw}");
            assert!(e.message.contains(needle), "{raw}: {}", e.message);
        }
        assert_eq!(chunk_len(6, 0, None), 6);
        assert_eq!(chunk_len(6, 6, Some(1)), 0);
        assert_eq!(chunk_len(1 << 30, 0, None), MAX_READ_BYTES);
        assert_eq!(chunk_len(1 << 30, 0, Some(10)), 10);
    }

    #[test]
    fn jsonp_takes_only_function_names() {
        let cb = |raw: &str| {
            let q = parse_query(raw).expect("query");
            jsonp_param(&q).map(|c| c.map(str::to_owned))
        };
        assert_eq!(cb("path=/x"), Ok(None));
        assert_eq!(
            cb("jsonp=angular.callbacks._0"),
            Ok(Some("angular.callbacks._0".into()))
        );
        for bad in ["jsonp=alert(1)//", "jsonp=", "jsonp=a%3Bb"] {
            assert_eq!(cb(bad).map_err(|e| e.status), Err(400), "{bad}");
        }
    }

    #[test]
    fn modes_read_as_ls_shows_them() {
        for (mode, text) in [
            (0o100644, "-rw-r--r--"),
            (0o040755, "drwxr-xr-x"),
            (0o120777, "lrwxrwxrwx"),
            (0o010600, "prw-------"),
            (0o140700, "srwx------"),
            (0o020620, "crw--w----"),
            (0o060660, "brw-rw----"),
            (0o104755, "-rwxr-xr-x"),
        ] {
            assert_eq!(mode_string(mode), text, "{mode:o}");
        }
        let f = FileInfo {
            path: "/w/c/stdout".into(),
            nlink: 1,
            size: 1077,
            mtime: TimeInfo::from_secs(1795290214),
            mode: 0o100644,
            uid: "root".into(),
            gid: "root".into(),
        };
        // The shape of legacy-endpoints/28-agent-files-browse.json.
        assert_eq!(
            serde_json::to_string(&legacy_entry(&f)).expect("json"),
            r#"{"gid":"root","mode":"-rw-r--r--","mtime":1795290214.0,"nlink":1,"path":"/w/c/stdout","size":1077,"uid":"root"}"#
        );
    }

    #[test]
    fn text_ends_on_a_character_and_always_moves_on() {
        assert_eq!(text_of(b"plain\n"), "plain\n");
        assert_eq!(text_of("a€".as_bytes()), "a€");
        // The euro sign cut after two of its three bytes is left for the next read.
        assert_eq!(text_of(&"a€".as_bytes()[..3]), "a");
        assert_eq!(text_of(&"ü".as_bytes()[..1]), "\u{FFFD}");
        assert_eq!(text_of(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(text_of(b""), "");
    }

    #[test]
    fn owners_are_named_where_the_host_knows_them() {
        let mut names = Names::default();
        assert_eq!(names.user(0), "root");
        assert_eq!(names.group(0), "root");
        assert_eq!(names.user(3_999_999), "3999999");
        assert_eq!(names.group(3_999_999), "3999999");
    }

    #[test]
    fn each_executor_has_a_latest_run() {
        use holdfast_api::scheduler::{FrameworkInfo, TaskInfo};
        let framework = |id: &str| -> FrameworkInfo {
            serde_json::from_value(
                serde_json::json!({"user": "root", "name": "fw", "id": {"value": id}}),
            )
            .expect("framework")
        };
        let task = |id: &str| -> TaskInfo {
            serde_json::from_value(serde_json::json!({
                "name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
                "command": {"value": "true"}
            }))
            .expect("task")
        };
        fn run(c: &'static str) -> impl FnOnce() -> (String, PathBuf) {
            move || (c.to_owned(), PathBuf::from(format!("/w/containers/{c}")))
        }
        let mut r = Registry::new(10);
        r.add_task(framework("f1"), task("t1"), run("c1"))
            .expect("t1");
        r.add_task(framework("f1"), task("old"), run("c2"))
            .expect("old");
        r.add_task(framework("f1"), task("../x"), run("c4"))
            .expect("odd id");
        // t1 ran before; its earlier run is among the completed ones.
        let fw = r.frameworks.get_mut("f1").expect("f1");
        for id in ["t1", "old"] {
            let e = fw.executors.remove(id).expect("executor");
            fw.completed_executors.push_back(e);
        }
        r.add_task(framework("f1"), task("t1"), run("c3"))
            .expect("t1 again");
        let runs = executor_runs(&r);
        let latest = |v: &str| PathBuf::from(v);
        assert_eq!(
            runs,
            vec![
                (
                    latest("/frameworks/f1/executors/old/runs/latest"),
                    latest("/w/containers/c2")
                ),
                (
                    latest("/frameworks/f1/executors/t1/runs/latest"),
                    latest("/w/containers/c3")
                ),
            ]
        );
    }

    #[test]
    fn framework_runs_outside_the_sandboxes_are_not_served() {
        let w = work();
        let sandboxes = w.roots[0].real.clone();
        let runs = vec![
            (
                PathBuf::from("/frameworks/f/executors/e/runs/latest"),
                w.sandbox.clone(),
            ),
            (
                PathBuf::from("/frameworks/f/executors/bad/runs/latest"),
                w.work.join("meta"),
            ),
        ];
        let all = run_roots(runs.clone(), &sandboxes, None);
        assert_eq!(all.len(), 1, "{all:?}");
        let wanted = PathBuf::from("/frameworks/f/executors/e/runs/latest/stdout");
        let mut roots = w.roots.clone();
        roots.extend(run_roots(runs, &sandboxes, Some(&wanted)));
        let r = resolve(&roots, &s(&wanted)).expect("virtual path");
        assert_eq!(r.real, real(&w.sandbox.join("stdout")));
        assert_eq!(r.root, real(&w.sandbox));
        assert!(is_forbidden(resolve(
            &roots,
            "/frameworks/f/executors/bad/runs/latest/secret"
        )));
        assert_eq!(
            resolve(&roots, "/frameworks/f/executors/e/runs/latest/../../../../../../meta"),
            Err(FilesError::Forbidden(
                "'/frameworks/f/executors/e/runs/latest/../../../../../../meta' is not in a sandbox of this agent; GET /files/debug lists the directories it serves".into()
            ))
        );
    }
}
