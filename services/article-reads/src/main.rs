//! `wxpulse-article-reads`: consumes article read events, writes wxpulse.article_reads.

fn main() -> std::process::ExitCode {
    wxpulse_runtime::service::main(
        "Consumes article read events, writes wxpulse.article_reads",
        wxpulse_article_reads::ArticleReads::new,
    )
}
