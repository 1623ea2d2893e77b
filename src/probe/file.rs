//! The file prober (`prober: file`): certificates on disk. The target is a path or a glob;
//! each file may be a PEM bundle or a DER certificate, and is read again at every run.
//! A file that cannot be read or parsed is reported with its reason and never hides the others.

use super::certs::{self, CertInfo, Origin};
use super::{Failure, FailureReason, Report};
use crate::metrics::families::{CERT_FILE_ERROR, PROBE_SSL_EARLIEST_CERT_EXPIRY};
use crate::pem;
use std::path::PathBuf;

/// Certificate files are small; anything larger is not one, and is not read whole.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// `prober: file` has no section: the target says which files to read.
pub struct FileProbe;

pub async fn probe(target: &str, _: &FileProbe, report: &mut Report) -> Result<(), Failure> {
    let target = target.to_string();
    let files = tokio::task::spawn_blocking(move || read_all(&target)).await.map_err(|e| {
        Failure::new(FailureReason::CertificateFile, format!("reading files: {e}"))
    })??;
    let mut problems = Vec::new();
    let mut earliest: Option<i64> = None;
    for file in &files {
        let path = file.path.display().to_string();
        for (position, cert) in file.certificates.iter().enumerate() {
            certs::record(report, Origin::File { path: &path, position }, cert);
            earliest = Some(earliest.map_or(cert.not_after, |e| e.min(cert.not_after)));
        }
        report.log(format_args!("{path}: {} certificate(s)", file.certificates.len()));
        if let Some(problem) = file.problem {
            report.log(format_args!("{path}: {problem}"));
            report.set_labeled(&CERT_FILE_ERROR, [path.clone(), problem.to_string()], 1.0);
            problems.push(format!("{path}: {problem}"));
        }
    }
    if let Some(earliest) = earliest {
        report.set(&PROBE_SSL_EARLIEST_CERT_EXPIRY, earliest as f64);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            FailureReason::CertificateFile,
            format!("{} of {} files: {}", problems.len(), files.len(), problems.join("; ")),
        ))
    }
}

/// A target the file prober can read: a path, or a glob that compiles.
pub fn check_target(target: &str) -> Result<(), Failure> {
    let invalid = |why: String| Failure::new(FailureReason::InvalidTarget, why);
    if target.trim().is_empty() {
        return Err(invalid("the target must be a path or a glob".into()));
    }
    if is_glob(target) {
        glob::Pattern::new(target).map_err(|e| invalid(format!("glob {target:?}: {e}")))?;
    }
    Ok(())
}

fn is_glob(target: &str) -> bool {
    target.contains(['*', '?', '['])
}

struct CertFile {
    path: PathBuf,
    certificates: Vec<CertInfo>,
    problem: Option<&'static str>,
}

fn read_all(target: &str) -> Result<Vec<CertFile>, Failure> {
    let paths: Vec<PathBuf> = if is_glob(target) {
        let pattern = glob::glob(target).map_err(|e| {
            Failure::new(FailureReason::InvalidTarget, format!("glob {target:?}: {e}"))
        })?;
        let mut paths: Vec<PathBuf> =
            pattern.filter_map(Result::ok).filter(|p| !p.is_dir()).collect();
        paths.sort();
        if paths.is_empty() {
            return Err(Failure::new(
                FailureReason::CertificateFile,
                format!("no file matches {target:?}"),
            ));
        }
        paths
    } else {
        vec![PathBuf::from(target)]
    };
    Ok(paths.into_iter().map(read_one).collect())
}

fn read_one(path: PathBuf) -> CertFile {
    // Regular files only, opened without blocking: a FIFO or device could hold the read for good.
    let (certificates, problem) = match crate::files::read(&path, MAX_FILE_BYTES) {
        Ok(bytes) => parse(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => (Vec::new(), Some("too_large")),
        Err(_) => (Vec::new(), Some("unreadable")),
    };
    CertFile { path, certificates, problem }
}

/// Every certificate in a PEM bundle (other PEM blocks, such as keys, are skipped), or the one
/// DER certificate the bytes hold.
fn parse(bytes: &[u8]) -> (Vec<CertInfo>, Option<&'static str>) {
    if !pem::is_pem(bytes) {
        return match CertInfo::parse(bytes) {
            Ok(cert) => (vec![cert], None),
            Err(_) => (Vec::new(), Some("not_a_certificate")),
        };
    }
    let mut certificates = Vec::new();
    let mut problem = None;
    for block in pem::certificates(bytes) {
        match block.map_err(|_| ()).and_then(|der| CertInfo::parse(&der).map_err(|_| ())) {
            Ok(cert) => certificates.push(cert),
            Err(()) => problem = Some("not_a_certificate"),
        }
    }
    if certificates.is_empty() && problem.is_none() {
        problem = Some("not_a_certificate");
    }
    (certificates, problem)
}
