# Figures, the HTML report and the paper's tables, from results/eval/summary.csv (rules/evaluate.smk).
# The target tables_and_report names them all: `snakemake tables_and_report` brings the tables, the
# figures and the report up to date.


rule plot_average_segments:
    input:
        summary=R("eval/summary.csv"),
    output:
        report(R("figures/average_segments.png"), caption="report/average_segments.rst", category="Figures"),
    params:
        tables=config["tables"],
        epochs=EVAL_TABLES.epochs,
        model=EVAL_TABLES.model,
    log:
        log_path("plot_average_segments"),
    conda:
        f"{ENVS}/report.yaml"
    script:
        "../scripts/plot_average_segments.py"


rule plot_frame_strip:
    input:
        folders=[EVAL_GENERATED.format(model=m, checkpoint=c, group=g) for m, c, g in EVAL_STRIPS.keys()],
        per_video=R("eval/per_video.csv"),
    output:
        report(
            R("figures/frame_strip_{index}.png"),
            caption="report/frame_strip.rst",
            category="Figures",
            labels={"figure": "frame strip", "prompt": "{index}"},
        ),
    params:
        strips=config["report"]["frame_strips"],
        epochs=EVAL_TABLES.epochs,
    wildcard_constraints:
        index=r"\d+",
    log:
        log_path("plot_frame_strip", "{index}"),
    conda:
        f"{ENVS}/report.yaml"
    script:
        "../scripts/plot_frame_strip.py"


rule render_report:
    input:
        summary=R("eval/summary.csv"),
        per_video=R("eval/per_video.csv"),
        chart=R("figures/average_segments.png"),
        strips=[R(f"figures/frame_strip_{i}.png") for i in EVAL_STRIPS.indices],
    output:
        report(R("report.html"), caption="report/report_html.rst", category="Report"),
    params:
        tables=config["tables"],
        epochs=EVAL_TABLES.epochs,
        model=EVAL_TABLES.model,
        report=config["report"],
        settings={k: config[k] for k in config["report"]["settings"] if k in config},
    log:
        log_path("render_report"),
    conda:
        f"{ENVS}/report.yaml"
    script:
        "../scripts/render_report.py"


rule make_tables:
    input:
        summary=R("eval/summary.csv"),
    output:
        table1=report(R("table1.csv"), caption="report/table1.rst", category="Tables"),
        table1_vs_paper=report(R("table1_vs_paper.csv"), caption="report/table1_vs_paper.rst", category="Tables"),
        table2=report(R("table2.csv"), caption="report/table2.rst", category="Tables"),
        table2_vs_paper=report(R("table2_vs_paper.csv"), caption="report/table2_vs_paper.rst", category="Tables"),
    params:
        tables=config["tables"],
        epochs=EVAL_TABLES.epochs,
        model=EVAL_TABLES.model,
    log:
        log_path("make_tables"),
    conda:
        f"{ENVS}/report.yaml"
    script:
        "../scripts/make_tables.py"


rule tables_and_report:
    input:
        rules.make_tables.output,
        rules.render_report.input.chart,
        rules.render_report.input.strips,
        rules.render_report.output,
    default_target: False
    localrule: True
