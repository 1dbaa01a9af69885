"""What runs inside the pods the operator creates: a matrix cell's prepare and measure, a ModelInstall's install,
a BatchJob's validate, shard, merge and clean. Each step reads its input from its arguments and environment
and writes its result as JSON into a ConfigMap the operator reads back (`kubeinfer step ...`, hidden).
"""
