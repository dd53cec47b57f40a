# A two-step CWL Workflow (steps embedded, as a packed workflow): wc counts the
# words of a file, then a Python one-liner turns the count into a JSON report.
# cwltool runs both steps inside the job's one Slurm allocation.
cwlVersion: v1.2
class: Workflow
id: wordreport
label: Word report
inputs:
  text: File
  title: {type: string, default: report}
outputs:
  report:
    type: File
    outputSource: summarise/report
steps:
  count:
    run:
      class: CommandLineTool
      baseCommand: [wc, -w]
      stdin: $(inputs.text.path)
      inputs:
        text: File
      outputs:
        counts: stdout
      stdout: counts.txt
    in: {text: text}
    out: [counts]
  summarise:
    run:
      class: CommandLineTool
      baseCommand:
        - python3
        - -c
        - "import json, sys; n = int(open(sys.argv[2]).read().split()[0]); print(json.dumps({'title': sys.argv[1], 'words': n}))"
      inputs:
        title: {type: string, inputBinding: {position: 1}}
        counts: {type: File, inputBinding: {position: 2}}
      outputs:
        report: stdout
      stdout: report.json
    in: {title: title, counts: count/counts}
    out: [report]
