//! Exec: one-shot with captured output, or an interactive session that streams output and
//! takes stdin and terminal resizes.

use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptions;
use futures_util::{Stream, StreamExt};
use infrapilot_core::docker::{
    ContainerPath, ContainerRef, ExecCommand, ExecResult, ExecStream, ExecUser, MAX_EXEC_OUTPUT,
    exec_frame,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::error::docker_error;
use crate::command::{CommandError, ErrorCode, Input, Replies};

/// How long to wait for the engine to record an exec's exit after its output ended.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExecSpec<'a> {
    pub(super) cmd: &'a ExecCommand,
    pub(super) tty: bool,
    pub(super) interactive: bool,
    pub(super) user: Option<&'a ExecUser>,
    pub(super) workdir: Option<&'a ContainerPath>,
    /// The initial terminal size, rows and columns.
    pub(super) size: Option<(u16, u16)>,
}

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, Error>> + Send>>;
type Stdin = Pin<Box<dyn AsyncWrite + Send>>;

/// Runs `spec.cmd` in `container`. One-shot: the result holds the output (1 MiB per stream at
/// most) and the exit code. Interactive: output goes out as [`exec_frame`] chunks, input comes
/// from the command's input channel, and the result holds only the exit code.
pub(super) async fn exec(
    docker: &Docker,
    container: &ContainerRef,
    spec: ExecSpec<'_>,
    replies: &Replies,
) -> Result<ExecResult, CommandError> {
    let options = CreateExecOptions {
        attach_stdin: Some(spec.interactive),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(spec.tty),
        cmd: Some(spec.cmd.args().to_vec()),
        user: spec.user.map(|u| u.as_str().to_owned()),
        working_dir: spec.workdir.map(|w| w.as_str().to_owned()),
        ..Default::default()
    };
    let id = docker
        .create_exec(container.as_str(), options)
        .await
        .map_err(docker_error)?
        .id;
    let start = StartExecOptions {
        detach: false,
        tty: spec.tty,
        output_capacity: None,
    };
    let StartExecResults::Attached { output, input } = docker
        .start_exec(&id, Some(start))
        .await
        .map_err(docker_error)?
    else {
        return Err(CommandError::new(
            ErrorCode::Internal,
            "the Docker engine did not attach to the exec",
        ));
    };
    let mut result = if spec.interactive {
        if let Some((rows, cols)) = spec.size {
            resize(docker, &id, u32::from(rows), u32::from(cols)).await;
        }
        interactive(docker, &id, output, input, replies).await?
    } else {
        drop(input);
        capture(output).await?
    };
    result.exit_code = exit_code(docker, &id).await?;
    Ok(result)
}

/// Reads all output into the result, keeping at most [`MAX_EXEC_OUTPUT`] bytes per stream.
async fn capture(mut output: Output) -> Result<ExecResult, CommandError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut truncated = false;
    while let Some(item) = output.next().await {
        let (buffer, bytes) = match item.map_err(docker_error)? {
            LogOutput::StdErr { message } => (&mut stderr, message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => (&mut stdout, message),
        };
        let room = MAX_EXEC_OUTPUT.saturating_sub(buffer.len());
        truncated |= bytes.len() > room;
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    Ok(ExecResult {
        exit_code: None,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        truncated,
    })
}

/// Forwards output as chunks and input to the process until its output ends.
async fn interactive(
    docker: &Docker,
    id: &str,
    mut output: Output,
    mut stdin: Stdin,
    replies: &Replies,
) -> Result<ExecResult, CommandError> {
    let mut input = replies.take_input();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(item) => {
                    let (stream, bytes) = match item.map_err(docker_error)? {
                        LogOutput::StdErr { message } => (ExecStream::Stderr, message),
                        LogOutput::StdOut { message }
                        | LogOutput::Console { message }
                        | LogOutput::StdIn { message } => (ExecStream::Stdout, message),
                    };
                    replies.chunk(exec_frame(stream, &bytes)).await?;
                }
                None => break,
            },
            message = next_input(&mut input) => match message {
                Some(Input::Stdin(bytes)) if stdin_open => {
                    // A process that stopped reading ends its output soon; that ends the loop.
                    if let Err(e) = write_all(&mut stdin, &bytes).await {
                        tracing::debug!(exec = %id, error = %e, "stdin write failed");
                        stdin_open = false;
                    }
                }
                Some(Input::Stdin(_)) => {}
                Some(Input::Resize(size)) => resize(docker, id, size.rows, size.cols).await,
                Some(Input::CloseStdin(_)) => {
                    stdin_open = false;
                    if let Err(e) = stdin.shutdown().await {
                        tracing::debug!(exec = %id, error = %e, "closing stdin failed");
                    }
                }
                // The session stopped routing input: keep streaming output.
                None => input = None,
            },
        }
    }
    Ok(ExecResult {
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
    })
}

/// The next input message; never resolves without an input channel.
async fn next_input(input: &mut Option<mpsc::Receiver<Input>>) -> Option<Input> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn write_all(stdin: &mut Stdin, bytes: &[u8]) -> std::io::Result<()> {
    stdin.write_all(bytes).await?;
    stdin.flush().await
}

/// Resizes the exec's terminal; a failure (no TTY, the process ended) is logged, not fatal.
async fn resize(docker: &Docker, id: &str, rows: u32, cols: u32) {
    if rows == 0 || cols == 0 {
        return;
    }
    let options = ResizeExecOptions {
        h: i32::try_from(rows).unwrap_or(i32::MAX),
        w: i32::try_from(cols).unwrap_or(i32::MAX),
    };
    if let Err(e) = docker.resize_exec(id, options).await {
        tracing::debug!(exec = %id, error = %e, "resizing the terminal failed");
    }
}

/// The exec's exit code; the engine records it shortly after the output ends.
async fn exit_code(docker: &Docker, id: &str) -> Result<Option<i64>, CommandError> {
    let deadline = tokio::time::Instant::now() + EXIT_WAIT;
    loop {
        let inspect = docker.inspect_exec(id).await.map_err(docker_error)?;
        if inspect.running != Some(true) || tokio::time::Instant::now() >= deadline {
            return Ok(inspect.exit_code);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
