//! Docker's errors as command errors, Docker's message verbatim.

use bollard::errors::Error;

use crate::command::{CommandError, ErrorCode};

/// Maps a bollard error: 404 → not found, 409 (and 403, Docker's "forbidden in this state") →
/// conflict, other 4xx → invalid, an engine that cannot be reached or does not answer →
/// unavailable, anything else → internal.
pub(crate) fn docker_error(e: Error) -> CommandError {
    match e {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            let code = match status_code {
                404 => ErrorCode::NotFound,
                403 | 409 => ErrorCode::Conflict,
                400..=499 => ErrorCode::Invalid,
                _ => ErrorCode::Internal,
            };
            let message = if message.is_empty() {
                format!("the Docker engine answered with status {status_code}")
            } else {
                message
            };
            CommandError::new(code, message)
        }
        Error::RequestTimeoutError => CommandError::new(
            ErrorCode::Unavailable,
            "the Docker engine did not answer in time",
        ),
        Error::HyperLegacyError { .. }
        | Error::HyperResponseError { .. }
        | Error::IOError { .. }
        | Error::SocketNotFoundError(_) => CommandError::new(
            ErrorCode::Unavailable,
            format!("the Docker engine is unreachable: {e}"),
        ),
        Error::DockerStreamError { error } => CommandError::new(ErrorCode::Internal, error),
        other => CommandError::new(ErrorCode::Internal, other.to_string()),
    }
}

/// Whether `e` is Docker's "no such object".
pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> Error {
        Error::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn statuses_map_to_codes_with_dockers_message() {
        let e = docker_error(server(404, "No such container: web"));
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::NotFound, "No such container: web")
        );
        assert_eq!(
            docker_error(server(409, "in use")).code,
            ErrorCode::Conflict
        );
        assert_eq!(docker_error(server(400, "bad")).code, ErrorCode::Invalid);
        assert_eq!(docker_error(server(500, "boom")).code, ErrorCode::Internal);
        assert!(docker_error(server(500, "")).message.contains("500"));
        assert_eq!(
            docker_error(Error::RequestTimeoutError).code,
            ErrorCode::Unavailable
        );
        assert_eq!(
            docker_error(Error::SocketNotFoundError("/x.sock".into())).code,
            ErrorCode::Unavailable
        );
        assert!(is_not_found(&server(404, "")));
        assert!(!is_not_found(&server(409, "")));
    }
}
